// Stalk — Celery monitoring server.
// `stalk hash-password` and `stalk token create`: the credential helpers. Each returns the exit code.
#pragma once

#include <string>

namespace stalk {

// Reads one password line from stdin (no echo when stdin is a terminal), prints its bcrypt hash and
// the `user:hash:role` line format for --basic_auth_file.
int RunHashPassword(int cost);

// Prints a new random API token (shown once) and the line to add to --api_tokens_file.
int RunTokenCreate(const std::string& role, const std::string& label);

}  // namespace stalk
