// Stalk — Celery monitoring server.
// Unit tests of ingestion's load shedding (common/load_shed.h): the stages start in their documented
// order as the IngestQueue fills, end with hysteresis, and while custom_events is in force the writer
// skips application events (counted) but still applies every task and worker event.
#include <gtest/gtest.h>

#include "common/load_shed.h"
#include "ingest/ingest_pipeline.h"
#include "ingest/ingest_queue.h"
#include "state/shared_state.h"

namespace stalk {
namespace {

TEST(LoadShed, StagesStartInOrderAndEndWithHysteresis) {
  LoadShed shed;
  EXPECT_EQ(shed.level(), 0);
  EXPECT_FALSE(shed.Update(249, 1000));
  EXPECT_FALSE(shed.Sheds(ShedStage::kStoreEvents));
  EXPECT_TRUE(shed.Update(250, 1000));  // 25 %: store_events first ...
  EXPECT_TRUE(shed.Sheds(ShedStage::kStoreEvents));
  EXPECT_FALSE(shed.Sheds(ShedStage::kCustomEvents));
  EXPECT_TRUE(shed.Update(500, 1000));  // ... 50 %: then custom events
  EXPECT_TRUE(shed.Sheds(ShedStage::kCustomEvents));
  EXPECT_FALSE(shed.Sheds(ShedStage::kQueueFull));  // never a level: the queue drops when full
  // Down: custom_events holds until under 25 %, store_events until under 12.5 %.
  shed.Update(260, 1000);
  EXPECT_EQ(shed.level(), 2);
  shed.Update(249, 1000);
  EXPECT_EQ(shed.level(), 1);
  shed.Update(130, 1000);
  EXPECT_EQ(shed.level(), 1);
  shed.Update(124, 1000);
  EXPECT_EQ(shed.level(), 0);
  // A jump from empty to nearly full starts both stages at once.
  EXPECT_TRUE(shed.Update(990, 1000));
  EXPECT_EQ(shed.level(), 2);
  EXPECT_EQ(shed.level_rises(), 3u);
  EXPECT_EQ(ShedStageName(ShedStage::kStoreEvents), "store_events");
  EXPECT_EQ(ShedStageName(ShedStage::kCustomEvents), "custom_events");
  EXPECT_EQ(ShedStageName(ShedStage::kQueueFull), "queue_full");
}

RawMessage Body(std::string json) { return RawMessage{std::move(json), 1000, "application/json", true}; }

TEST(LoadShed, QueueFillDrivesTheLevelAndDropsOnlyWhenFull) {
  IngestStats stats;
  const size_t one = 100 + sizeof(RawMessage);  // bytes the queue charges for a 100-byte message
  IngestQueue queue(one * 8, stats);
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(queue.Push(Body(std::string(100, 'x'))));
    if (i == 1) {
      EXPECT_EQ(stats.shed.level(), 1) << "2 of 8 is 25 %";
    }
  }
  EXPECT_EQ(stats.shed.level(), 2);
  EXPECT_EQ(stats.queue_dropped.load(), 0u);
  EXPECT_FALSE(queue.Push(Body(std::string(100, 'x'))));  // full: the last stage, counted by the queue
  EXPECT_EQ(stats.queue_dropped.load(), 1u);
  std::vector<RawMessage> out;
  ASSERT_TRUE(queue.PopBatch(out, 8, 0));
  EXPECT_EQ(out.size(), 8u);
  EXPECT_EQ(stats.shed.level(), 0) << "an empty queue sheds nothing";
}

TEST(LoadShed, WriterSkipsApplicationEventsOnlyWhileSheddingThem) {
  SharedState state{StateOptions{}};
  IngestStats stats;
  IngestQueue queue(1 << 20, stats);
  IngestPipeline pipeline(state, queue, stats);
  const std::string task = R"({"type":"task-received","uuid":"0e7b5a1c-0000-4000-8000-00000000000)";
  auto batch = [&](char id) {
    return std::vector<RawMessage>{
        Body(task + id + R"(","name":"t","hostname":"w","timestamp":1})"),
        Body(R"({"type":"order-paid","hostname":"w","timestamp":1,"amount":3})"),
        Body(R"({"type":"worker-heartbeat","hostname":"w","timestamp":1,"freq":2})"),
    };
  };
  EXPECT_EQ(pipeline.ApplyBatch(batch('1')), 3u);
  EXPECT_EQ(stats.shed.count(ShedStage::kCustomEvents), 0u);

  stats.shed.Update(600, 1000);  // as a queue 60 % full would
  EXPECT_EQ(pipeline.ApplyBatch(batch('2')), 2u) << "the task and the heartbeat, not the order-paid event";
  EXPECT_EQ(stats.shed.count(ShedStage::kCustomEvents), 1u);
  {
    auto r = state.Read();
    EXPECT_EQ(r->task_count(), 2u);
    EXPECT_EQ(r->counters().other_events, 1u);
  }
  stats.shed.Update(0, 1000);
  EXPECT_EQ(pipeline.ApplyBatch(batch('3')), 3u);
  EXPECT_EQ(state.Read()->counters().other_events, 2u);
}

}  // namespace
}  // namespace stalk
