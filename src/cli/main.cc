// Stalk — Celery monitoring server.
// Entry point: `stalk serve | capture | replay | init | doctor | hash-password | token | version`.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string_view>

#include "auth/auth_commands.h"
#include "cli/commands.h"
#include "cli/settings.h"
#include "common/log.h"
#include "setup/doctor_command.h"
#include "setup/init_command.h"

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
  hash_cmd->add_option("--cost", hash_cost, "bcrypt cost (log2 rounds)")
      ->capture_default_str()
      ->check(CLI::Range(4, 16));
  std::string token_role = "viewer", token_label;
  CLI::App* token_cmd = app.add_subcommand("token", "API tokens for `Authorization: Bearer`");
  token_cmd->require_subcommand(1);
  CLI::App* token_create_cmd =
      token_cmd->add_subcommand("create", "Print a new random token and its --api_tokens_file line");
  token_create_cmd->add_option("--role", token_role, "viewer, operator or admin")->capture_default_str();
  token_create_cmd->add_option("--label", token_label, "What the token is for (e.g. prometheus)")->required();

  InitOptions init;
  std::string init_profile = "development";
  CLI::App* init_cmd = app.add_subcommand("init", "Set a Celery project up for monitoring (reads it, never runs it)");
  init_cmd->add_option("project_dir", init.dir, "The Celery project's folder")->capture_default_str();
  init_cmd->add_option("--profile", init_profile, "development, staging or production")
      ->capture_default_str()
      ->check(CLI::IsMember({"development", "dev", "staging", "production", "prod"}));
  init_cmd->add_flag("--dry-run", init.dry_run, "Write nothing; print unified diffs of what would change");
  init_cmd->add_flag("--force", init.force, "Overwrite files that exist with other content");

  DoctorOptions doctor;
  CLI::App* doctor_cmd =
      app.add_subcommand("doctor", "Check a running Celery + Stalk setup; --fix switches task events on");
  doctor_cmd->add_option("--broker", doctor.broker, "Broker URL")->envname("CELERY_BROKER_URL")->required();
  doctor_cmd
      ->add_option("--result-backend,--result_backend", doctor.result_backend,
                   "Result backend URL (default: the broker)")
      ->envname("STALK_RESULT_BACKEND");
  doctor_cmd->add_option("--stalk-url", doctor.stalk_url,
                         "A running stalk serve to check (/healthcheck), e.g. http://127.0.0.1:5555");
  doctor_cmd->add_option("--db", doctor.db, "Stalk's store (SQLite file checked with quick_check)")
      ->envname("STALK_DB")
      ->capture_default_str();
  doctor_cmd->add_option("--address", doctor.address, "Address Stalk binds (auth is required off loopback)")
      ->envname("STALK_ADDRESS")
      ->capture_default_str();
  doctor_cmd->add_option("--timeout", doctor.timeout, "Seconds to watch the event stream")
      ->capture_default_str()
      ->check(CLI::Range(0.5, 600.0));
  doctor_cmd->add_option("--global_keyprefix", doctor.global_keyprefix, "kombu global_keyprefix")
      ->envname("STALK_GLOBAL_KEYPREFIX");
  doctor_cmd->add_option("--fanout_prefix", doctor.fanout_prefix, "kombu fanout_prefix")
      ->envname("STALK_FANOUT_PREFIX")
      ->capture_default_str();
  doctor_cmd->add_flag("--fix", doctor.fix,
                       "Broadcast enable_events to workers that send no task events, then re-check");

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

  // The issue tracker and most tools spell this flag with dashes; every other option follows Flower's
  // underscores. Accept both spellings of this one.
  static char insecure_flag[] = "--insecure_no_auth";
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--insecure-no-auth") {
      argv[i] = insecure_flag;
    }
  }
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
  if (init_cmd->parsed()) {
    ParseInitProfile(init_profile, init.profile);
    return RunInit(init);
  }
  if (doctor_cmd->parsed()) {
    return RunDoctor(doctor);
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
