// Stalk — Celery monitoring server.
// InitTemplates: the files `stalk init` writes, rendered from a ProjectInfo and a profile. Pure
// functions of their inputs (no clock, no paths of the machine), so golden tests can compare them
// byte for byte. Nothing here ever holds a secret: credentials are placeholders in the
// `{service}_{env}_your_{what}_here` style, and everything real comes from .env at run time.
#pragma once

#include <string>
#include <vector>

#include "setup/project_scan.h"

namespace stalk {

enum class InitProfile { kDevelopment, kStaging, kProduction };
const char* InitProfileName(InitProfile p);   // "development", ...
const char* InitProfileShort(InitProfile p);  // "dev", "staging", "prod" (the placeholders' {env})

struct PlannedFile {
  std::string path;     // relative to the project
  std::string content;  // the whole file (for .gitignore: the lines to append when missing)
  bool executable = false;
  bool append_missing_lines = false;  // .gitignore: add only the lines the file lacks
};

// Every file init writes, in the order it reports them.
std::vector<PlannedFile> RenderInitFiles(const ProjectInfo& info, InitProfile profile);

// The Grafana dashboard (JSON text) over Stalk's metric families.
std::string RenderGrafanaDashboard(const ProjectInfo& info);

// The metric family names the written files refer to (for the report and for tests).
const std::vector<std::string>& MonitoringMetricNames();

// The report of Celery settings to change: what was found, and the exact lines to add where.
std::string RenderSettingsReport(const ProjectInfo& info, InitProfile profile);

}  // namespace stalk
