// Stalk — Celery monitoring server.
// Flower's remote-control and task-sending routes (POST), with Flower's parameter names — taken from
// the query string, a form body (application/x-www-form-urlencoded) or a JSON object body — and
// Flower's JSON replies; the work is done by control/ControlService, this file only parses and maps
// ControlStatus to HTTP codes (200, 400, 403 worker refused, 404 unknown worker/task, 503 broker or
// result backend unavailable or too many waiting calls, 504 no reply in time).
//
//   POST /api/worker/shutdown/<w>
//   POST /api/worker/pool/restart/<w>
//   POST /api/worker/pool/grow/<w>?n=1          POST /api/worker/pool/shrink/<w>?n=1
//   POST /api/worker/pool/autoscale/<w>?min=&max=
//   POST /api/worker/queue/add-consumer/<w>?queue=    POST /api/worker/queue/cancel-consumer/<w>?queue=
//   POST /api/task/revoke/<id>?terminate=&signal=SIGTERM
//   POST /api/task/rate-limit/<name>   workername, ratelimit
//   POST /api/task/timeout/<name>      workername, soft, hard
//   POST /api/task/async-apply/<name>  POST /api/task/send-task/<name>  POST /api/task/apply/<name>[?timeout=s]
//        body {"args": [...], "kwargs": {...}, <apply_async options>} (control/task_submission.h)
//   GET  /api/task/result/<id>[?timeout=s]
//   POST /api/task/abort/<id>
//   GET  /api/stalk/inspect/<method>[?workername=&ids=a,b]   (Stalk's: one inspect command, raw replies)
#pragma once

#include <functional>

#include "control/control_service.h"
#include "http/router.h"

namespace stalk {

struct ControlContext {
  ControlService* service = nullptr;
  std::function<double()> now;  // wall clock (countdown/expires); empty: the system clock
};

void RegisterControlApi(Router& router, ControlContext& ctx);

}  // namespace stalk
