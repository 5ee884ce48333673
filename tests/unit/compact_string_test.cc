// Stalk — Celery monitoring server.
// CompactString: inline (<= 7 bytes) and heap forms, null vs empty, truncation, moves.
#include <gtest/gtest.h>

#include "state/compact_string.h"

namespace stalk {
namespace {

TEST(CompactString, NullEmptyInlineAndHeap) {
  CompactString s;
  EXPECT_TRUE(s.is_null());
  s.Assign("");
  EXPECT_FALSE(s.is_null());
  EXPECT_EQ(s.view(), "");
  for (size_t n : {1u, 6u, 7u, 8u, 9u, 100u, 5000u}) {
    std::string text(n, 'x');
    text.front() = 'a';
    text.back() = 'z';
    s.Assign(text);
    EXPECT_EQ(s.view(), text) << n;
    EXPECT_EQ(s.size(), n);
  }
  s.Reset();
  EXPECT_TRUE(s.is_null());
}

TEST(CompactString, KeepsEmbeddedNulAndHighBytes) {
  const std::string text("a\0b\xff", 4);
  CompactString s(text);
  EXPECT_EQ(s.view(), text);
}

TEST(CompactString, TruncatesWithMarkerWithoutSplittingUtf8) {
  CompactString s;
  const std::string text = std::string(9, 'a') + "\xC3\xA9" + std::string(20, 'b');
  EXPECT_TRUE(s.Assign(text, 10));  // byte 10 is inside the two-byte é: cut before it
  EXPECT_EQ(s.view(), std::string(9, 'a') + "... [truncated by stalk: 31 bytes]");
  EXPECT_FALSE(s.Assign("short", 10));
  EXPECT_EQ(s.view(), "short");
}

TEST(CompactString, MovesTransferOwnership) {
  CompactString a(std::string(50, 'q'));
  CompactString b(std::move(a));
  EXPECT_TRUE(a.is_null());  // NOLINT(bugprone-use-after-move): documented moved-from state
  EXPECT_EQ(b.view(), std::string(50, 'q'));
  CompactString c("tiny");
  c = std::move(b);
  EXPECT_EQ(c.size(), 50u);
}

}  // namespace
}  // namespace stalk
