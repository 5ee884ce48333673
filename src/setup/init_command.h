// Stalk — Celery monitoring server.
// `stalk init`: scans a Celery project (ScanProject), renders the monitoring setup
// (RenderInitFiles) and writes it without clobbering anything: a file that exists with other
// content is left alone unless --force, one with the same content is "unchanged" (so a second run
// changes nothing), .gitignore only gets the lines it lacks. --dry-run writes nothing and prints
// unified diffs instead. Prints what it found, what it wrote, the Celery settings to change and
// warnings about real-looking secrets (where and which key, never the value).
#pragma once

#include <string>

#include "setup/init_templates.h"

namespace stalk {

struct InitOptions {
  std::string dir = ".";
  InitProfile profile = InitProfile::kDevelopment;
  bool dry_run = false;
  bool force = false;
};

// Parses "development" / "dev", "staging", "production" / "prod".
bool ParseInitProfile(const std::string& text, InitProfile& out);

// Runs init, printing to stdout (warnings to stderr). Exit code: 0 done (files that differ and were
// skipped are reported, not errors), 2 the project folder is missing or a write failed.
int RunInit(const InitOptions& options);

}  // namespace stalk
