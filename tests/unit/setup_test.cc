// Stalk — Celery monitoring server.
// setup/: secret detection, placeholders, the unified diff and the settings report's spelling.
#include <gtest/gtest.h>

#include "setup/init_templates.h"
#include "setup/secret_scan.h"
#include "setup/unified_diff.h"

namespace stalk {
namespace {

TEST(SecretScan, FindsRealValuesNotPlaceholders) {
  const std::string env =
      "# comment SECRET=abc\n"
      "CELERY_BROKER_URL=redis://:hunter2hunter2@redis:6379/0\n"
      "SECRET_KEY=9f8e7d6c5b4a\n"
      "STALK_BASIC_AUTH=admin:stalk_dev_your_password_here\n"
      "DB_PASSWORD=\n"
      "API_TOKEN=${API_TOKEN}\n"
      "BROKER=redis://127.0.0.1:6379/0\n";
  auto found = FindSecrets(".env", env);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].line, 2);
  EXPECT_EQ(found[0].key, "URL password");
  EXPECT_EQ(found[1].line, 3);
  EXPECT_EQ(found[1].key, "SECRET_KEY");
}

TEST(SecretScan, PythonNeedsALiteral) {
  const std::string py =
      "SECRET_KEY = os.environ['SECRET_KEY']\n"
      "PASSWORD = get_password()\n"
      "API_KEY = 'sk_live_abcdef123456'\n";
  auto found = FindSecrets("proj/settings.py", py);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].line, 3);
}

TEST(UnifiedDiff, NewFileAndChange) {
  EXPECT_EQ(UnifiedDiff("a", "x\n", "x\n", true), "");
  EXPECT_EQ(UnifiedDiff("a", "", "x\ny\n", false), "--- /dev/null\n+++ b/a\n@@ -0,0 +1,2 @@\n+x\n+y\n");
  EXPECT_EQ(UnifiedDiff("a", "1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\n3\n4\nfive\n6\n7\n8\n9\n", true),
            "--- a/a\n+++ b/a\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n");
}

TEST(SettingsReport, SpellsSettingsLikeTheProject) {
  ProjectInfo django;
  django.django = true;
  django.style = SettingsStyle::kDjangoNamespace;
  django.config_file = "proj/settings.py";
  const std::string r = RenderSettingsReport(django, InitProfile::kDevelopment);
  EXPECT_NE(r.find("Add to proj/settings.py:\n    CELERY_WORKER_SEND_TASK_EVENTS = True\n"), std::string::npos) << r;
  EXPECT_NE(r.find("CELERY_WORKER_HIJACK_ROOT_LOGGER = False"), std::string::npos);
  EXPECT_EQ(r.find("EVENT_QUEUE_TTL"), std::string::npos);  // Redis: not relevant

  ProjectInfo plain;
  plain.app_file = plain.config_file = "tasks.py";
  plain.app_var = "celery";
  plain.broker = BrokerKind::kAmqp;
  plain.task_events = {true, "tasks.py:4"};
  const std::string p = RenderSettingsReport(plain, InitProfile::kDevelopment);
  EXPECT_NE(p.find("ok      worker_send_task_events (tasks.py:4)"), std::string::npos) << p;
  EXPECT_NE(p.find("    celery.conf.event_queue_ttl = 5.0\n"), std::string::npos) << p;
}

}  // namespace
}  // namespace stalk
