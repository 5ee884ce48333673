// Stalk — Celery monitoring server.
// Settings precedence: flags > STALK_* env > FLOWER_* env (and CELERY_BROKER_URL) > --conf file > default.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "cli/settings.h"

namespace stalk {
namespace {

class SettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : {"STALK_PORT", "FLOWER_PORT", "STALK_BROKER", "FLOWER_BROKER", "CELERY_BROKER_URL",
                          "BROKER_URL", "STALK_MAX_TASKS", "FLOWER_MAX_TASKS"}) {
      unsetenv(v);
    }
  }
  Result<bool> Parse(std::vector<std::string> args) {
    app_ = std::make_unique<CLI::App>();
    s_ = ServeSettings{};
    RegisterServeSettings(*app_, s_);
    std::vector<const char*> argv{"stalk"};
    for (auto& a : args)
      argv.push_back(a.c_str());
    app_->parse(static_cast<int>(argv.size()), const_cast<char**>(argv.data()));
    return ApplyEnvAndConfig(*app_, s_);
  }
  std::unique_ptr<CLI::App> app_;
  ServeSettings s_;
};

TEST_F(SettingsTest, DefaultsAreFlowers) {
  ASSERT_TRUE(Parse({}).ok());
  EXPECT_EQ(s_.port, 5555);
  EXPECT_EQ(s_.max_tasks, 100000);
  EXPECT_EQ(s_.address, "127.0.0.1");
}

TEST_F(SettingsTest, EnvPrecedence) {
  setenv("FLOWER_PORT", "6000", 1);
  ASSERT_TRUE(Parse({}).ok());
  EXPECT_EQ(s_.port, 6000);
  setenv("STALK_PORT", "7000", 1);
  ASSERT_TRUE(Parse({}).ok());
  EXPECT_EQ(s_.port, 7000) << "STALK_ beats FLOWER_";
  ASSERT_TRUE(Parse({"--port", "8000"}).ok());
  EXPECT_EQ(s_.port, 8000) << "a flag beats the environment";
}

TEST_F(SettingsTest, BrokerFallsBackToCeleryBrokerUrl) {
  setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6390/0", 1);
  ASSERT_TRUE(Parse({}).ok());
  EXPECT_EQ(s_.broker, "redis://127.0.0.1:6390/0");
}

TEST_F(SettingsTest, ConfigFileIsBelowEnvironment) {
  const std::string path = ::testing::TempDir() + "/flowerconfig.py";
  {
    std::ofstream f(path);
    f << "# a Flower config file\nport = 5601\nmax_tasks = 42  # comment\nbroker = 'redis://127.0.0.1:1/2'\n";
  }
  ASSERT_TRUE(Parse({"--conf", path}).ok());
  EXPECT_EQ(s_.port, 5601);
  EXPECT_EQ(s_.max_tasks, 42);
  EXPECT_EQ(s_.broker, "redis://127.0.0.1:1/2");
  setenv("STALK_MAX_TASKS", "77", 1);
  ASSERT_TRUE(Parse({"--conf", path}).ok());
  EXPECT_EQ(s_.max_tasks, 77);
}

TEST_F(SettingsTest, BadValuesAreErrorsThatNameTheSetting) {
  setenv("STALK_PORT", "not-a-number", 1);
  auto r = Parse({});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("STALK_PORT"), std::string::npos) << r.error();
  unsetenv("STALK_PORT");
  const std::string path = ::testing::TempDir() + "/bad.conf";
  {
    std::ofstream f(path);
    f << "port = 1\nthis line has no equals sign\n";
  }
  r = Parse({"--conf", path});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find(":2:"), std::string::npos) << r.error();
}

TEST(ConfigTextTest, CommentsQuotesAndWhereErrorsAre) {
  auto r = ParseConfigText("a = 1 # note\n\n  b='x#y'  \nc = \"q\"\r\nd=\n", "f.conf");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ((*r)["a"], "1");
  EXPECT_EQ((*r)["b"], "x#y");  // a quote before the # keeps it in the value
  EXPECT_EQ((*r)["c"], "q");
  EXPECT_EQ((*r)["d"], "");
  auto no_key = ParseConfigText("a = 1\n = 2\n", "f.conf");
  ASSERT_FALSE(no_key.ok());
  EXPECT_EQ(no_key.error(), "f.conf:2: expected `name = value`");
  EXPECT_FALSE(ParseConfigText("just words", "f.conf").ok());
}

TEST(ConfigTextTest, AssignSettingNeverEchoesTheValue) {
  ServeSettings s;
  EXPECT_TRUE(AssignSetting(s, "port", "6000").ok());
  EXPECT_EQ(s.port, 6000);
  auto bad = AssignSetting(s, "port", "stalk_dev_your_password_here");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), "invalid value for 'port'");
  EXPECT_EQ(s.port, 6000);
  EXPECT_EQ(AssignSetting(s, "no_such", "1").error(), "unknown setting 'no_such'");
}

TEST_F(SettingsTest, MarkdownTableListsEveryOption) {
  const std::string md = SettingsMarkdown();
  for (const char* opt : {"`--broker`", "`--port`", "`--max_tasks`", "`--conf`", "`CELERY_BROKER_URL`"}) {
    EXPECT_NE(md.find(opt), std::string::npos) << opt;
  }
}

}  // namespace
}  // namespace stalk
