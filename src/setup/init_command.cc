// Stalk — Celery monitoring server.
// `stalk init` (see init_command.h): plan, compare with what is on disk, then write or show diffs.
#include "setup/init_command.h"

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "setup/project_scan.h"
#include "setup/secret_scan.h"
#include "setup/unified_diff.h"

namespace stalk {
namespace fs = std::filesystem;
namespace {

bool ReadFile(const fs::path& p, std::string& out) {
  std::ifstream in(p, std::ios::binary);
  if (!in)
    return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

bool WriteFile(const fs::path& p, const std::string& content, bool executable, std::string& error) {
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  const fs::path tmp = p.string() + ".stalk-init.tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out.flush()) {
      error = "cannot write " + tmp.string();
      return false;
    }
  }
  if (executable)
    ::chmod(tmp.c_str(), 0755);
  fs::rename(tmp, p, ec);
  if (ec) {
    error = "cannot rename into " + p.string() + ": " + ec.message();
    return false;
  }
  return true;
}

// The .gitignore after adding the lines of `wanted` it lacks (compared trimmed); == `current`
// when nothing is missing.
std::string WithMissingLines(const std::string& current, const std::string& wanted) {
  std::set<std::string> have;
  std::istringstream in(current);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r' || line.back() == '\t'))
      line.pop_back();
    have.insert(line);
  }
  std::string missing;
  std::istringstream w(wanted);
  for (std::string line; std::getline(w, line);) {
    if (!have.count(line))
      missing += line + "\n";
  }
  if (missing.empty())
    return current;
  std::string out = current;
  if (!out.empty() && out.back() != '\n')
    out += "\n";
  if (!out.empty())
    out += "\n";
  return out + "# Stalk (stalk init): secrets and the local store stay out of git\n" + missing;
}

bool IsExecutable(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && (st.st_mode & S_IXUSR);
}

}  // namespace

bool ParseInitProfile(const std::string& text, InitProfile& out) {
  if (text == "development" || text == "dev")
    out = InitProfile::kDevelopment;
  else if (text == "staging")
    out = InitProfile::kStaging;
  else if (text == "production" || text == "prod")
    out = InitProfile::kProduction;
  else
    return false;
  return true;
}

int RunInit(const InitOptions& options) {
  std::error_code ec;
  const fs::path root = fs::path(options.dir);
  if (!fs::is_directory(root, ec)) {
    std::fprintf(stderr, "stalk init: %s is not a folder\n", options.dir.c_str());
    return 2;
  }
  const ProjectInfo info = ScanProject(options.dir);
  std::printf("stalk init: project %s, profile %s%s\n", info.name.c_str(), InitProfileName(options.profile),
              options.dry_run ? " (dry run: nothing is written)" : "");
  std::printf("Read %zu files:", info.files_read.size());
  for (const auto& f : info.files_read)
    std::printf(" %s", f.c_str());
  std::printf("\n");
  std::string app = "not found (no Celery(...) call)";
  if (!info.app_file.empty()) {
    app = (info.app_name.empty() ? std::string("(unnamed)") : "'" + info.app_name + "'") + " in " + info.app_file +
          " (celery -A " + info.app_module + ")";
  }
  std::string events = "not switched on anywhere";
  if (!info.task_events.where.empty())
    events = (info.task_events.on ? "on (" : "off (") + info.task_events.where + ")";
  std::printf("Celery app:    %s\n", app.c_str());
  std::printf("Django:        %s\n", info.django ? "yes" : "no");
  std::printf(
      "Broker:        %s%s\n", BrokerKindName(info.broker),
      info.broker_where.empty() ? " (no broker URL or requirement found)" : (" (" + info.broker_where + ")").c_str());
  std::printf("Task events:   %s\n", events.c_str());
  std::printf("\n");

  int rc = 0;
  int skipped = 0;
  for (const PlannedFile& f : RenderInitFiles(info, options.profile)) {
    const fs::path path = root / f.path;
    std::string current;
    const bool exists = ReadFile(path, current);
    const std::string wanted = f.append_missing_lines ? WithMissingLines(exists ? current : "", f.content) : f.content;
    std::string status;
    bool write = false;
    if (exists && current == wanted) {
      if (f.executable && !IsExecutable(path)) {
        status = options.dry_run ? "would make executable" : "made executable";
        if (!options.dry_run)
          ::chmod(path.c_str(), 0755);
      } else {
        status = "unchanged";
      }
    } else if (!exists) {
      status = options.dry_run ? "would create" : "created";
      write = true;
    } else if (f.append_missing_lines) {
      status = options.dry_run ? "would append missing entries" : "appended missing entries";
      write = true;
    } else if (options.force) {
      status = options.dry_run ? "would overwrite (--force)" : "overwritten (--force)";
      write = true;
    } else {
      status = "exists and differs: kept (use --force to overwrite, --dry-run to see the diff)";
      ++skipped;
    }
    std::printf("  %-34s %s\n", f.path.c_str(), status.c_str());
    if (options.dry_run && current != wanted) {
      std::fputs(UnifiedDiff(f.path, exists ? current : "", wanted, exists).c_str(), stdout);
    } else if (write) {
      std::string error;
      if (!WriteFile(path, wanted, f.executable, error)) {
        std::fprintf(stderr, "stalk init: %s\n", error.c_str());
        rc = 2;
      }
    }
  }
  if (skipped > 0) {
    std::printf("%d file(s) kept as they are; --dry-run --force shows what would change.\n", skipped);
  }
  std::printf("\n%s", RenderSettingsReport(info, options.profile).c_str());

  // Secrets: in the files read, and in the two files init itself touches.
  std::vector<SecretFinding> secrets = info.secrets;
  for (const char* touched : {".gitignore", ".env.example"}) {
    std::string text;
    if (ReadFile(root / touched, text)) {
      auto found = FindSecrets(touched, text);
      secrets.insert(secrets.end(), found.begin(), found.end());
    }
  }
  if (!secrets.empty())
    std::printf("\n");
  for (const SecretFinding& s : secrets) {
    const bool env = s.file == ".env" || (s.file.size() > 5 && s.file.compare(s.file.size() - 5, 5, "/.env") == 0);
    std::printf("warning: %s:%d holds a real-looking secret (%s): %s\n", s.file.c_str(), s.line, s.key.c_str(),
                env ? "fine in .env as long as git ignores it (the .gitignore entries do); no value was copied from it"
                    : "move it to .env and read it from the environment; rotate it if it was ever committed");
  }
  return rc;
}

}  // namespace stalk
