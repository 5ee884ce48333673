// Stalk — Celery monitoring server.
// ParseTaskSubmission: the request body of Flower's /api/task/async-apply|apply|send-task routes →
// a TaskSpec. Flower reads one JSON object, pops `args` (must be an array) and `kwargs`, and passes
// every other key to apply_async as an option; Stalk honours these options:
//   countdown (seconds)        eta = now + countdown
//   eta                        "YYYY-MM-DD HH:MM:SS[.ffffff]" (Flower's format; naive = UTC), ISO 8601
//                              with 'T' and/or an offset, or epoch seconds
//   expires                    seconds from now (number or numeric string), or a date as for eta
//   queue                      target queue (default "celery"); routing_key is accepted as a synonym
//   priority                   0-255
//   task_id                    the id to use (default: a fresh uuid4)
//   time_limit, soft_time_limit  seconds (the message's timelimit header)
//   ignore_result              bool
// A nested "options" object is merged in too (top-level keys win). Other keys are ignored, as
// apply_async ignores options it does not know. Every error is a 400 for the caller.
#pragma once

#include <string_view>

#include "common/result.h"
#include "control/task_message.h"

namespace stalk {

// `now` is epoch seconds (injected for tests).
Result<TaskSpec> ParseTaskSubmission(std::string_view body, std::string_view task_name, double now);

// Parses a date as described above into epoch seconds.
Result<double> ParseTaskDate(std::string_view text);
// Epoch seconds → "2026-11-26T01:11:25.554841+00:00" (Celery's isoformat with an explicit offset).
std::string FormatIsoUtc(double epoch_seconds);

}  // namespace stalk
