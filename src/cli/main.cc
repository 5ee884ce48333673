// Stalk — Celery monitoring server.
// Entry point: `stalk serve | capture | replay | version`.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "auth/auth_commands.h"
#include "cli/commands.h"
#include "cli/settings.h"
#include "common/log.h"

int main(int argc, char** argv) {
  using namespace stalk;
  CLI::App app{"Stalk — monitoring and observability for Celery (a faster, durable Flower)"};
  app.require_subcommand(1);

  ServeSettings serve;
  bool help_markdown = false;
  CLI::App* serve_cmd = app.add_subcommand("serve", "Follow the broker's event stream and serve the API");
  RegisterServeSettings(*serve_cmd, serve);
  serve_cmd->add_flag("--help-markdown", help_markdown, "Print the options as a Markdown table and exit");

  ReplaySettings replay;
  CLI::App* replay_cmd = app.add_subcommand("replay", "Apply a capture file at full speed and print figures");
  replay_cmd->add_option("file", replay.file, "Capture file written by `stalk capture`")->required();
  replay_cmd->add_option("--max_tasks", replay.max_tasks, "Most tasks kept")->capture_default_str();
  replay_cmd->add_option("--repeat", replay.repeat, "Replay the file this many times")->capture_default_str();

  CaptureSettings capture;
  CLI::App* capture_cmd = app.add_subcommand("capture", "Record the live event stream to a capture file");
  capture_cmd->add_option("--broker", capture.broker, "Broker URL")->envname("CELERY_BROKER_URL")->required();
  capture_cmd->add_option("--output,-o", capture.output, "Capture file to write")->required();
  capture_cmd->add_option("--duration", capture.duration, "Seconds to record")->capture_default_str();
  capture_cmd->add_option("--max-messages", capture.max_messages, "Most messages to record")->capture_default_str();
  capture_cmd->add_option("--global_keyprefix", capture.global_keyprefix, "kombu global_keyprefix");
  capture_cmd->add_option("--fanout_prefix", capture.fanout_prefix, "kombu fanout_prefix")->capture_default_str();

  int hash_cost = 12;
  CLI::App* hash_cmd = app.add_subcommand("hash-password", "Read a password from stdin, print its bcrypt hash");
  hash_cmd->add_option("--cost", hash_cost, "bcrypt cost (log2 rounds)")->capture_default_str()->check(CLI::Range(4, 16));
  std::string token_role = "viewer", token_label;
  CLI::App* token_cmd = app.add_subcommand("token", "API tokens for `Authorization: Bearer`");
  token_cmd->require_subcommand(1);
  CLI::App* token_create_cmd = token_cmd->add_subcommand("create", "Print a new random token and its --api_tokens_file line");
  token_create_cmd->add_option("--role", token_role, "viewer, operator or admin")->capture_default_str();
  token_create_cmd->add_option("--label", token_label, "What the token is for (e.g. prometheus)")->required();

  std::string rules_config, rules_output;
  CLI::App* rules_cmd = app.add_subcommand("rules", "Alert rules (see README \"Alerting\")");
  rules_cmd->require_subcommand(1);
  CLI::App* rules_export_cmd =
      rules_cmd->add_subcommand("export", "Write the alerts config's rules as Prometheus alerting rules");
  rules_export_cmd->add_option("--alerts_config", rules_config, "Alerts config (YAML)")
      ->envname("STALK_ALERTS_CONFIG")
      ->required();
  rules_export_cmd->add_option("--output,-o", rules_output, "File to write (default: stdout)");

  app.add_subcommand("version", "Print the version");

  CLI11_PARSE(app, argc, argv);

  if (serve_cmd->parsed()) {
    if (help_markdown) {
      std::fputs(SettingsMarkdown().c_str(), stdout);
      return 0;
    }
    if (auto r = ApplyEnvAndConfig(*serve_cmd, serve); !r) {
      Logger("stalk")->error("{}", r.error());
      return 2;
    }
    return RunServe(serve);
  }
  if (hash_cmd->parsed()) {
    return RunHashPassword(hash_cost);
  }
  if (token_create_cmd->parsed()) {
    return RunTokenCreate(token_role, token_label);
  }
  if (rules_export_cmd->parsed()) {
    return RunRulesExport(rules_config, rules_output);
  }
  if (replay_cmd->parsed()) {
    return RunReplay(replay);
  }
  if (capture_cmd->parsed()) {
    return RunCapture(capture);
  }
  std::printf("stalk %s\n", STALK_VERSION);
  return 0;
}
