// Stalk — Celery monitoring server.
#include "fuzz_support.h"

#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/json_writer.h"
#include "protocol/event.h"
#include "state/task_json.h"

namespace stalk::fuzz {
namespace {

constexpr double kT0 = 1795655136.0;  // the lab clock of celery-protocol.md's captures

// Event bodies as celery 5.2.6 sends them (celery-protocol.md §2.3), covering every task state.
constexpr const char* kSampleBodies[] = {
    R"J({"hostname": "w1@lab", "utcoffset": 0, "pid": 8288, "clock": 1, "freq": 2.0, "active": 0, "processed": 0,
        "loadavg": [0.53, 0.38, 0.18], "sw_ident": "py-celery", "sw_ver": "5.2.6", "sw_sys": "Linux",
        "timestamp": 1795655136.5, "type": "worker-online"})J",
    R"J({"hostname": "w2@lab", "utcoffset": -1, "pid": 8290, "clock": 3, "freq": 2.0, "active": 1, "processed": 7,
        "loadavg": [1.0, 0.5, 0.25], "sw_ident": "py-celery", "sw_ver": "5.2.6", "sw_sys": "Linux",
        "timestamp": 1795655230.0, "type": "worker-heartbeat"})J",
    R"J({"hostname": "w3@gone", "utcoffset": 0, "pid": 9000, "clock": 2, "freq": 2.0, "active": 1, "processed": 1,
        "timestamp": 1795655137.0, "type": "worker-heartbeat"})J",
    R"J({"hostname": "gen8470@api-1", "utcoffset": 0, "pid": 8470, "clock": 1,
        "uuid": "5397a7f2-3c5e-4f0e-9a47-0b1a3c9e1d11", "root_id": "5397a7f2-3c5e-4f0e-9a47-0b1a3c9e1d11",
        "parent_id": null, "name": "proj.tasks.add", "args": "(2, 2)", "kwargs": "{}", "retries": 0, "eta": null,
        "expires": null, "queue": "celery", "exchange": "", "routing_key": "celery", "timestamp": 1795655137.1,
        "type": "task-sent"})J",
    R"J([{"hostname": "w1@lab", "utcoffset": 0, "pid": 8288, "clock": 5, "uuid": "5397a7f2-3c5e-4f0e-9a47-0b1a3c9e1d11",
         "name": "proj.tasks.add", "args": "(2, 2)", "kwargs": "{}", "root_id": "5397a7f2-3c5e-4f0e-9a47-0b1a3c9e1d11",
         "parent_id": null, "retries": 0, "eta": null, "expires": null, "timestamp": 1795655137.2,
         "type": "task-received"},
        {"hostname": "w1@lab", "utcoffset": 0, "pid": 8288, "clock": 6,
         "uuid": "5397a7f2-3c5e-4f0e-9a47-0b1a3c9e1d11", "timestamp": 1795655137.3, "type": "task-started"}])J",
    R"J([{"hostname": "w1@lab", "utcoffset": 0, "pid": 8288, "clock": 7, "uuid": "5397a7f2-3c5e-4f0e-9a47-0b1a3c9e1d11",
         "result": "4", "runtime": 0.0123, "timestamp": 1795655137.4, "type": "task-succeeded"}])J",
    R"J([{"hostname": "w1@lab", "utcoffset": 0, "pid": 8288, "clock": 8, "uuid": "a1c0ffee-0000-4000-8000-000000000002",
         "name": "proj.billing.charge_card", "args": "('h\u00e9llo \u2713', 42)",
         "kwargs": "{'priority': 'high', 'tenant': 'acme'}", "retries": 0, "timestamp": 1795655138.0,
         "type": "task-received"},
        {"hostname": "w1@lab", "utcoffset": 0, "pid": 8288, "clock": 9, "uuid": "a1c0ffee-0000-4000-8000-000000000002",
         "exception": "ValueError('card declined: 4242')",
         "traceback": "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: card declined",
         "timestamp": 1795655138.5, "type": "task-failed"}])J",
    R"J([{"hostname": "w2@lab", "utcoffset": -1, "pid": 8290, "clock": 10,
         "uuid": "a1c0ffee-0000-4000-8000-000000000003", "name": "proj.sync.import_rows", "args": "()",
         "kwargs": "{}", "retries": 0, "timestamp": 1795655139.0, "type": "task-received"},
        {"hostname": "w2@lab", "utcoffset": -1, "pid": 8290, "clock": 11,
         "uuid": "a1c0ffee-0000-4000-8000-000000000003", "exception": "RuntimeError('transient')",
         "traceback": "...", "timestamp": 1795655139.1, "type": "task-retried"},
        {"hostname": "w2@lab", "utcoffset": -1, "pid": 8290, "clock": 12,
         "uuid": "a1c0ffee-0000-4000-8000-000000000003", "name": "proj.sync.import_rows", "args": "()",
         "kwargs": "{}", "retries": 1, "timestamp": 1795655139.2, "type": "task-received"}])J",
    R"J({"hostname": "w1@lab", "utcoffset": 0, "pid": 8288, "clock": 13, "uuid": "a1c0ffee-0000-4000-8000-000000000004",
        "terminated": false, "signum": null, "expired": true, "timestamp": 1795655140.0, "type": "task-revoked"})J",
    R"J({"hostname": "w1@lab", "utcoffset": 0, "pid": 8288, "clock": 14, "uuid": "a1c0ffee-0000-4000-8000-000000000005",
        "requeue": false, "timestamp": 1795655141.0, "type": "task-rejected"})J",
    R"J({"hostname": "w2@lab", "utcoffset": -1, "pid": 8290, "clock": 15,
        "uuid": "a1c0ffee-0000-4000-8000-000000000006", "progress": 0.5, "timestamp": 1795655142.0,
        "type": "task-progress"})J",
    R"J({"hostname": "w2@lab", "utcoffset": -1, "pid": 8290, "clock": 16, "uuid": "my-custom-task-id",
        "name": "proj.reports.nightly", "args": "[]", "kwargs": "{\"k\": 1}", "retries": 0,
        "eta": "2026-11-25T10:00:00Z", "expires": null, "timestamp": 1795655143.0, "type": "task-received"})J",
    R"J({"hostname": "w1@lab", "utcoffset": 0, "pid": 8288, "clock": 17, "uuid": "a1c0ffee-0000-4000-8000-000000000007",
        "name": "proj.tasks.add", "args": "(1, 1)", "kwargs": "{}", "retries": 0,
        "root_id": "5397a7f2-3c5e-4f0e-9a47-0b1a3c9e1d11", "parent_id": "5397a7f2-3c5e-4f0e-9a47-0b1a3c9e1d11",
        "timestamp": 1795655144.0, "type": "task-received"})J",
    R"J([{"hostname": "w3@gone", "utcoffset": 0, "pid": 9000, "clock": 3, "uuid": "a1c0ffee-0000-4000-8000-000000000008",
         "name": "proj.notify.push", "args": "('x',)", "kwargs": "{}", "retries": 0, "timestamp": 1795655137.5,
         "type": "task-received"},
        {"hostname": "w3@gone", "utcoffset": 0, "pid": 9000, "clock": 4, "uuid": "a1c0ffee-0000-4000-8000-000000000008",
         "timestamp": 1795655137.6, "type": "task-started"}])J",
};

void RenderAll(const ClusterState& st, double now) {
  st.ForEachTaskNewestFirst([&](const Task& t) {
    JsonWriter w;
    WriteTaskJson(st, t, w, /*with_task_id=*/true);
    CheckValidJson(w.str(), "task JSON");
    return true;
  });
  for (const auto& [id, wk] : st.workers()) {
    JsonWriter w;
    WriteWorkerJson(st, wk, now, w);
    CheckValidJson(w.str(), "worker JSON");
  }
}

}  // namespace

std::string_view TakeLine(std::string_view& in) {
  const size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
  return line;
}

void FuzzCheck(bool ok, std::string_view what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant broken: %.*s\n", static_cast<int>(what.size()), what.data());
    std::abort();
  }
}

void CheckValidJson(std::string_view json, std::string_view what) {
  static simdjson::dom::parser parser;
  const simdjson::padded_string padded(json);
  simdjson::dom::element root;
  const auto error = parser.parse(padded).get(root);
  if (error) {
    std::fprintf(stderr, "invalid JSON (%s): %.*s\n", simdjson::error_message(error),
                 static_cast<int>(std::min<size_t>(json.size(), 2000)), json.data());
  }
  FuzzCheck(!error, what);
}

StateOptions TinyStateOptions() {
  StateOptions o;
  o.max_tasks = 8;
  o.max_workers = 4;
  o.max_field_bytes = 48;
  o.max_traceback_bytes = 96;
  o.purge_offline_workers = 30;
  return o;
}

void Applier::Apply(const Event& ev) {
  FuzzCheck(ev.kind == ClassifyEventType(ev.type), "event kind matches its type");
  FuzzCheck(!IsTaskEvent(ev.kind) || !ev.uuid.empty(), "task events carry a uuid");
  FuzzCheck(!IsWorkerEvent(ev.kind) || !ev.hostname.empty(), "worker events carry a hostname");
  state_.Apply(ev, kT0 + 0.001 * static_cast<double>(applied_));
  ++applied_;
  FuzzCheck(state_.task_count() <= state_.options().max_tasks, "task count within max_tasks");
}

void Applier::Reject(RejectReason why, std::string_view) {
  FuzzCheck(why < RejectReason::kCount, "reject reason in range");
  ++rejected_;
}

void TickAndRender(ClusterState& state) {
  state.Tick(kT0 + 1);
  RenderAll(state, kT0 + 1);
  state.Tick(kT0 + 3600);  // every worker expired: offline, lost tasks, purges
  RenderAll(state, kT0 + 3600);
}

double SampleNow() { return kT0 + 100; }

SharedState& SampleState() {
  static SharedState* state = [] {
    StateOptions o;
    o.max_tasks = 1000;
    auto* s = new SharedState(o);
    auto w = s->Write();
    EventDecoder decoder;
    Applier a(*w);
    for (const char* body : kSampleBodies) {
      decoder.DecodeBody(
          "application/json", body, [&](const Event& e) { a.Apply(e); },
          [&](RejectReason r, std::string_view d) { a.Reject(r, d); });
    }
    FuzzCheck(a.rejected() == 0, "sample events decode");
    w->Tick(SampleNow());
    return s;
  }();
  return *state;
}

}  // namespace stalk::fuzz
