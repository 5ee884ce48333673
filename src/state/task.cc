// Stalk — Celery monitoring server.
#include "state/task.h"

namespace stalk {

std::string_view TaskStateName(TaskState s) {
  switch (s) {
    case TaskState::kPending:
      return "PENDING";
    case TaskState::kReceived:
      return "RECEIVED";
    case TaskState::kStarted:
      return "STARTED";
    case TaskState::kSuccess:
      return "SUCCESS";
    case TaskState::kFailure:
      return "FAILURE";
    case TaskState::kRetry:
      return "RETRY";
    case TaskState::kRevoked:
      return "REVOKED";
    case TaskState::kRejected:
      return "REJECTED";
    case TaskState::kCustom:
      return "CUSTOM";
  }
  return "PENDING";
}

bool ParseTaskState(std::string_view name, TaskState& out) {
  for (size_t i = 0; i < kTaskStateCount - 1; ++i) {
    const auto s = static_cast<TaskState>(i);
    if (TaskStateName(s) == name) {
      out = s;
      return true;
    }
  }
  return false;
}

int Precedence(TaskState s) {
  switch (s) {
    case TaskState::kSuccess:
      return 0;
    case TaskState::kFailure:
      return 1;
    case TaskState::kCustom:
      return 2;
    case TaskState::kRevoked:
      return 3;
    case TaskState::kStarted:
      return 4;
    case TaskState::kReceived:
      return 5;
    case TaskState::kRejected:
      return 6;
    case TaskState::kRetry:
      return 7;
    case TaskState::kPending:
      return 8;
  }
  return 8;
}

bool IsFinal(TaskState s) {
  return s == TaskState::kSuccess || s == TaskState::kFailure || s == TaskState::kRevoked || s == TaskState::kRejected;
}

const CompactString Task::kNullText;

std::string Task::IdString() const { return text_id ? std::string(text_key().view()) : FormatUuid(id); }

std::string_view Task::IdView(char (&buf)[36]) const {
  if (text_id) {
    return text_key().view();
  }
  FormatUuid(id, buf);
  return {buf, 36};
}

}  // namespace stalk
