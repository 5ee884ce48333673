// Stalk — Celery monitoring server.
// PythonRepr: Python's repr() of a JSON value, as Celery shows decoded objects — the `argsrepr` and
// `kwargsrepr` task headers (and so the args/kwargs of task events), and the text Flower gives a
// failed task's result ("ValueError('kaboom')"). JSON maps onto Python's json.loads types: null →
// None, true → True, arrays → lists, objects → dicts, integers → int, other numbers → float (with
// Python's shortest round-trip spelling: 1.0, 0.1, 1e+16, 1e-05).
// Not a full Python repr: non-ASCII characters are kept as they are (Python escapes only the
// non-printable ones), which is what a UI wants anyway.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace stalk {

std::string PythonRepr(const nlohmann::json& value);
// repr() of a Python str: single quotes unless the text has ' and no ", escapes for \\ \n \r \t and
// control characters.
std::string PythonStrRepr(std::string_view text);
// repr() of a Python float.
std::string PythonFloatRepr(double value);

// Flower's text for a result the backend stored as a serialized exception
// ({"exc_type": "ValueError", "exc_message": ["kaboom"], ...} → "ValueError('kaboom')"); empty when
// `result` is not one.
std::string ExceptionRepr(const nlohmann::json& result);

}  // namespace stalk
