// Stalk — Celery monitoring server.
// Unit tests of custom/: progress parsing, the per-task custom event log and its bounds, counts by type.
#include <gtest/gtest.h>

#include "custom/custom_events.h"
#include "protocol/event_decoder.h"
#include "state/cluster_state.h"

namespace stalk {
namespace {

TEST(CustomEvents, ProgressFromTheUsualShapes) {
  EXPECT_EQ(CustomEvents::ProgressFrom(R"({"current":3,"total":4})").value_or(-1), 75);
  EXPECT_EQ(CustomEvents::ProgressFrom(R"({"progress":0.5})").value_or(-1), 50);
  EXPECT_EQ(CustomEvents::ProgressFrom(R"({"progress":40})").value_or(-1), 40);
  EXPECT_EQ(CustomEvents::ProgressFrom(R"({"percent":250})").value_or(-1), 100);  // clamped
  EXPECT_EQ(CustomEvents::ProgressFrom(R"({"meta":{"current":1,"total":10}})").value_or(-1), 10);
  EXPECT_FALSE(CustomEvents::ProgressFrom(R"({"current":1,"total":0})"));
  EXPECT_FALSE(CustomEvents::ProgressFrom(R"({"tenant":"acme"})"));
  EXPECT_FALSE(CustomEvents::ProgressFrom("not json"));
}

TEST(CustomEvents, KeepsBoundedEventsPerTaskAndCountsTypes) {
  CustomEventsOptions o;
  o.max_events_per_task = 3;
  o.max_tasks = 2;
  o.max_types = 3;
  CustomEvents custom(o);
  ClusterState state{StateOptions{}};
  state.AddListener(&custom);
  EventDecoder decoder;
  auto apply = [&](const std::string& json) {
    decoder.DecodeBody(
        "application/json", json, [&](const Event& ev) { state.Apply(ev, 1000); },
        [](RejectReason, std::string_view) {});
  };
  const std::string a = "0e7b5a1c-0000-4000-8000-00000000000a";
  apply(R"({"type":"task-received","uuid":")" + a + R"(","name":"t","hostname":"w","timestamp":1})");
  for (int i = 1; i <= 5; ++i) {
    apply(R"({"type":"task-progress","uuid":")" + a + R"(","hostname":"w","timestamp":)" + std::to_string(1 + i) +
          R"(,"current":)" + std::to_string(i) + R"(,"total":5})");
  }
  auto info = custom.ForTask(a);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->events.size(), 3u);
  EXPECT_EQ(info->total_events, 5u);
  EXPECT_EQ(info->progress.value_or(-1), 100);
  EXPECT_NE(info->events.back().fields_json.find("\"current\":5"), std::string::npos);
  const std::string fields = custom.TaskJsonFields(a);
  EXPECT_EQ(fields.rfind("\"custom_events\":[", 0), 0u) << fields;
  EXPECT_NE(fields.find("\"progress\":100"), std::string::npos) << fields;

  apply(R"({"type":"order-paid","hostname":"w","timestamp":9,"amount":3})");
  apply(R"({"type":"invoice-sent","hostname":"w","timestamp":9})");
  apply(R"({"type":"user-signed-up","hostname":"w","timestamp":9})");  // past max_types: "other"
  auto counts = custom.Counts();
  EXPECT_EQ(counts["task-progress"].count, 5u);
  EXPECT_EQ(counts["task-progress"].kind, "task");
  EXPECT_EQ(counts["order-paid"].kind, "other");
  EXPECT_EQ(counts.count("user-signed-up"), 0u);
  EXPECT_EQ(counts["other"].count, 1u);
  EXPECT_EQ(custom.TaskJsonFields("unknown"), "");
}

}  // namespace
}  // namespace stalk
