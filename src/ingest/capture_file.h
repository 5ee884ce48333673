// Stalk — Celery monitoring server.
// Capture files: a recorded broker event stream, replayable at full speed (`stalk capture`,
// `stalk replay`, the benchmarks). Format (little-endian): the line "STALKCAP 1\n", then records of
//   u32 payload_len, f64 received_at, u8 raw_body, u16 content_type_len, content_type, payload.
#pragma once

#include <cstdio>
#include <optional>
#include <string>

#include "common/result.h"
#include "ingest/ingest_queue.h"

namespace stalk {

class CaptureWriter {
 public:
  static Result<CaptureWriter*> Open(const std::string& path);  // caller owns the pointer
  ~CaptureWriter();
  bool Write(const RawMessage& m);
  uint64_t written() const { return written_; }

 private:
  explicit CaptureWriter(FILE* f) : f_(f) {}
  FILE* f_;
  uint64_t written_ = 0;
};

class CaptureReader {
 public:
  static Result<CaptureReader*> Open(const std::string& path);
  ~CaptureReader();
  // nullopt at the end or on a truncated record.
  std::optional<RawMessage> Next();

 private:
  explicit CaptureReader(FILE* f) : f_(f) {}
  FILE* f_;
};

}  // namespace stalk
