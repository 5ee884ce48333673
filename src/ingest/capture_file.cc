// Stalk — Celery monitoring server.
#include "ingest/capture_file.h"

#include <cstdint>
#include <cstring>

namespace stalk {
namespace {
constexpr char kMagic[] = "STALKCAP 1\n";
constexpr size_t kMagicLen = sizeof(kMagic) - 1;
constexpr uint32_t kMaxRecord = 512u << 20;
}  // namespace

Result<CaptureWriter*> CaptureWriter::Open(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    return Error{"cannot open " + path + ": " + std::strerror(errno)};
  }
  std::fwrite(kMagic, 1, kMagicLen, f);
  return new CaptureWriter(f);
}

CaptureWriter::~CaptureWriter() { std::fclose(f_); }

bool CaptureWriter::Write(const RawMessage& m) {
  const auto len = static_cast<uint32_t>(m.payload.size());
  const auto ct_len = static_cast<uint16_t>(std::min<size_t>(m.content_type.size(), 65535));
  const uint8_t raw = m.raw_body ? 1 : 0;
  bool ok = std::fwrite(&len, sizeof len, 1, f_) == 1 && std::fwrite(&m.received_at, 8, 1, f_) == 1 &&
            std::fwrite(&raw, 1, 1, f_) == 1 && std::fwrite(&ct_len, 2, 1, f_) == 1 &&
            std::fwrite(m.content_type.data(), 1, ct_len, f_) == ct_len &&
            std::fwrite(m.payload.data(), 1, len, f_) == len;
  written_ += ok;
  return ok;
}

Result<CaptureReader*> CaptureReader::Open(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    return Error{"cannot open " + path + ": " + std::strerror(errno)};
  }
  char magic[kMagicLen];
  if (std::fread(magic, 1, kMagicLen, f) != kMagicLen || std::memcmp(magic, kMagic, kMagicLen) != 0) {
    std::fclose(f);
    return Error{path + " is not a Stalk capture file"};
  }
  return new CaptureReader(f);
}

CaptureReader::~CaptureReader() { std::fclose(f_); }

std::optional<RawMessage> CaptureReader::Next() {
  uint32_t len;
  uint8_t raw;
  uint16_t ct_len;
  RawMessage m;
  if (std::fread(&len, sizeof len, 1, f_) != 1 || len > kMaxRecord || std::fread(&m.received_at, 8, 1, f_) != 1 ||
      std::fread(&raw, 1, 1, f_) != 1 || std::fread(&ct_len, 2, 1, f_) != 1) {
    return std::nullopt;
  }
  m.raw_body = raw != 0;
  m.content_type.resize(ct_len);
  m.payload.resize(len);
  if (std::fread(m.content_type.data(), 1, ct_len, f_) != ct_len || std::fread(m.payload.data(), 1, len, f_) != len) {
    return std::nullopt;
  }
  return m;
}

}  // namespace stalk
