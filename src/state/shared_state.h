// Stalk — Celery monitoring server.
// SharedState: ClusterState behind a writer-preferring reader/writer lock. One writer (the ingest
// thread) applies events in short batches; readers (HTTP, metrics) take the read lock. Writer
// preference keeps a stream of readers from starving ingestion; the writer holds the lock for at most
// one batch (see ingest/ingest_pipeline.h), so readers wait at most that long.
#pragma once

#include <pthread.h>

#include "state/cluster_state.h"

namespace stalk {

class SharedState {
 public:
  explicit SharedState(StateOptions options) : state_(options) {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&lock_, &attr);
    pthread_rwlockattr_destroy(&attr);
  }
  ~SharedState() { pthread_rwlock_destroy(&lock_); }
  SharedState(const SharedState&) = delete;
  SharedState& operator=(const SharedState&) = delete;

  class ReadLock {
   public:
    explicit ReadLock(SharedState& s) : s_(s) { pthread_rwlock_rdlock(&s_.lock_); }
    ~ReadLock() { pthread_rwlock_unlock(&s_.lock_); }
    ReadLock(const ReadLock&) = delete;
    ReadLock& operator=(const ReadLock&) = delete;
    const ClusterState& operator*() const { return s_.state_; }
    const ClusterState* operator->() const { return &s_.state_; }

   private:
    SharedState& s_;
  };
  class WriteLock {
   public:
    explicit WriteLock(SharedState& s) : s_(s) { pthread_rwlock_wrlock(&s_.lock_); }
    ~WriteLock() { pthread_rwlock_unlock(&s_.lock_); }
    WriteLock(const WriteLock&) = delete;
    WriteLock& operator=(const WriteLock&) = delete;
    ClusterState& operator*() { return s_.state_; }
    ClusterState* operator->() { return &s_.state_; }

   private:
    SharedState& s_;
  };

  ReadLock Read() { return ReadLock(*this); }
  WriteLock Write() { return WriteLock(*this); }

 private:
  ClusterState state_;
  pthread_rwlock_t lock_;
};

}  // namespace stalk
