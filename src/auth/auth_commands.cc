// Stalk — Celery monitoring server.
#include "auth/auth_commands.h"

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "auth/credential_store.h"
#include "auth/secrets.h"

namespace stalk {

int RunHashPassword(int cost) {
  const bool tty = isatty(STDIN_FILENO) != 0;
  termios saved{};
  if (tty) {
    std::fputs("Password: ", stderr);
    tcgetattr(STDIN_FILENO, &saved);
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string password;
  std::getline(std::cin, password);
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    std::fputs("\n", stderr);
  }
  if (!password.empty() && password.back() == '\r') {
    password.pop_back();
  }
  auto hash = HashPassword(password, cost);
  password.assign(password.size(), '\0');
  if (!hash) {
    std::fprintf(stderr, "stalk hash-password: %s\n", hash.error().c_str());
    return 2;
  }
  std::printf("%s\n", hash->c_str());
  std::fprintf(stderr, "Add `USER:%s[:viewer|operator|admin]` to the --basic_auth_file.\n", hash->c_str());
  return 0;
}

int RunTokenCreate(const std::string& role_name, const std::string& label) {
  auto role = ParseRole(role_name);
  if (!role) {
    std::fprintf(stderr, "stalk token create: --role must be viewer, operator or admin\n");
    return 2;
  }
  if (label.find_first_of(":\n\r") != std::string::npos) {
    std::fprintf(stderr, "stalk token create: --label must not contain ':' or newlines\n");
    return 2;
  }
  auto token = NewApiToken();
  if (!token) {
    std::fprintf(stderr, "stalk token create: %s\n", token.error().c_str());
    return 1;
  }
  std::printf("token: %s\n", token->c_str());
  std::printf("line for --api_tokens_file: %s\n", CredentialStore::TokenFileLine(*token, *role, label).c_str());
  std::fprintf(stderr,
               "The token is shown only now; Stalk keeps only its SHA-256. Send it as "
               "`Authorization: Bearer <token>`.\n");
  return 0;
}

}  // namespace stalk
