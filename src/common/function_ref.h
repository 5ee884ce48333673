// Stalk — Celery monitoring server.
// FunctionRef: a non-owning reference to a callable, for callbacks on hot paths. std::function
// heap-allocates captures larger than two pointers, which cost a malloc per decoded message; this
// costs nothing. The referenced callable must outlive the call (always true for a lambda argument).
#pragma once

#include <type_traits>
#include <utility>

namespace stalk {

template <typename Sig>
class FunctionRef;

template <typename R, typename... Args>
class FunctionRef<R(Args...)> {
 public:
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef>>>
  FunctionRef(F&& f)  // NOLINT(google-explicit-constructor): used like std::function
      : obj_(const_cast<void*>(static_cast<const void*>(&f))), call_([](void* o, Args... a) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<Args>(a)...);
        }) {}

  R operator()(Args... a) const { return call_(obj_, std::forward<Args>(a)...); }

 private:
  void* obj_;
  R (*call_)(void*, Args...);
};

}  // namespace stalk
