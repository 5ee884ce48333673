// Stalk — Celery monitoring server.
// The Grafana dashboard `stalk init` writes (monitoring/grafana_dashboard.json): built as JSON values
// rather than text so it is always valid, with a Prometheus data-source variable so it imports into
// any Grafana. Every expression uses only families Stalk exports (MonitoringMetricNames).
#include <nlohmann/json.hpp>

#include "setup/init_templates.h"

namespace stalk {
namespace {

using nlohmann::ordered_json;

ordered_json Panel(int id, const std::string& type, const std::string& title, int x, int y, int w, int h,
                   const std::vector<std::pair<std::string, std::string>>& targets, const std::string& unit) {
  ordered_json t = ordered_json::array();
  char ref = 'A';
  for (const auto& [expr, legend] : targets) {
    t.push_back({{"datasource", {{"type", "prometheus"}, {"uid", "${datasource}"}}},
                 {"expr", expr},
                 {"legendFormat", legend},
                 {"refId", std::string(1, ref++)}});
  }
  return {{"id", id},
          {"type", type},
          {"title", title},
          {"datasource", {{"type", "prometheus"}, {"uid", "${datasource}"}}},
          {"gridPos", {{"x", x}, {"y", y}, {"w", w}, {"h", h}}},
          {"fieldConfig", {{"defaults", {{"unit", unit}}}, {"overrides", ordered_json::array()}}},
          {"options", ordered_json::object()},
          {"targets", t}};
}

}  // namespace

std::string RenderGrafanaDashboard(const ProjectInfo& info) {
  ordered_json panels = ordered_json::array();
  int id = 1;
  panels.push_back(
      Panel(id++, "stat", "Workers online", 0, 0, 6, 4, {{"sum(flower_worker_online)", "online"}}, "none"));
  panels.push_back(
      Panel(id++, "stat", "Broker connected", 6, 0, 6, 4, {{"min(stalk_broker_connected)", "connected"}}, "bool"));
  panels.push_back(Panel(id++, "stat", "Tasks tracked", 12, 0, 6, 4, {{"sum(stalk_tasks_tracked)", "tasks"}}, "none"));
  panels.push_back(Panel(id++, "stat", "Ingest lag", 18, 0, 6, 4, {{"max(stalk_ingest_lag_seconds)", "lag"}}, "s"));
  panels.push_back(Panel(id++, "timeseries", "Task events by type", 0, 4, 12, 8,
                         {{"sum by (type) (rate(flower_events_total[$__rate_interval]))", "{{type}}"}}, "ops"));
  panels.push_back(Panel(
      id++, "timeseries", "Failures by task", 12, 4, 12, 8,
      {{"sum by (task) (rate(flower_events_total{type=\"task-failed\"}[$__rate_interval]))", "{{task}}"}}, "ops"));
  panels.push_back(Panel(
      id++, "timeseries", "Task runtime p50 / p95", 0, 12, 12, 8,
      {{"histogram_quantile(0.5, sum by (le) (rate(flower_task_runtime_seconds_bucket[$__rate_interval])))", "p50"},
       {"histogram_quantile(0.95, sum by (le) (rate(flower_task_runtime_seconds_bucket[$__rate_interval])))", "p95"}},
      "s"));
  panels.push_back(Panel(id++, "timeseries", "Queue length", 12, 12, 12, 8,
                         {{"sum by (queue_name) (celery_queue_length)", "{{queue_name}}"}}, "none"));
  panels.push_back(Panel(id++, "timeseries", "Executing tasks by worker", 0, 20, 12, 8,
                         {{"sum by (worker) (flower_worker_number_of_currently_executing_tasks)", "{{worker}}"}},
                         "none"));
  panels.push_back(Panel(id++, "timeseries", "Stalk ingest", 12, 20, 12, 8,
                         {{"sum(rate(stalk_events_ingested_total[$__rate_interval]))", "ingested/s"},
                          {"sum(rate(stalk_events_rejected_total[$__rate_interval]))", "rejected/s"},
                          {"sum(rate(stalk_ingest_dropped_total[$__rate_interval]))", "dropped/s"}},
                         "ops"));
  panels.push_back(Panel(id++, "timeseries", "Stalk memory", 0, 28, 12, 8,
                         {{"stalk_process_resident_memory_bytes", "{{instance}}"}}, "bytes"));
  panels.push_back(Panel(id++, "timeseries", "Tasks lost with their worker", 12, 28, 12, 8,
                         {{"sum(increase(stalk_tasks_lost_total[$__rate_interval]))", "lost"}}, "none"));

  ordered_json dashboard = {
      {"title", "Celery (Stalk): " + info.name},
      {"uid", "stalk-" + info.name.substr(0, 30)},
      {"tags", {"celery", "stalk"}},
      {"timezone", "browser"},
      {"schemaVersion", 38},
      {"version", 1},
      {"refresh", "30s"},
      {"time", {{"from", "now-6h"}, {"to", "now"}}},
      {"templating",
       {{"list",
         {{{"name", "datasource"},
           {"label", "Prometheus"},
           {"type", "datasource"},
           {"query", "prometheus"},
           {"current", ordered_json::object()},
           {"hide", 0}}}}}},
      {"panels", panels},
  };
  return dashboard.dump(2) + "\n";
}

}  // namespace stalk
