// Stalk — Celery monitoring server.
// NameThisThread: names the calling thread (at most 15 characters) so `top -H`, perf and gdb tell
// Stalk's threads apart.
#pragma once

#include <pthread.h>

namespace stalk {

inline void NameThisThread(const char* name) { pthread_setname_np(pthread_self(), name); }

}  // namespace stalk
