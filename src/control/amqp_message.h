// Stalk — Celery monitoring server.
// AMQP form of a KombuMessage (celery-protocol.md §1.4): content type/encoding, delivery mode,
// priority, correlation id, reply-to and expiration as basic properties, kombu's headers as the
// application_headers table (JSON values mapped onto AMQP field kinds and back). AmqpProperties owns
// every byte the rabbitmq-c structs point at, so it must outlive the publish that uses it.
#pragma once

#include <amqp.h>

#include <deque>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "control/kombu_message.h"

namespace stalk {

class AmqpProperties {
 public:
  // `priority` >= 0 overrides the message's own priority property.
  explicit AmqpProperties(const KombuMessage& m, int priority = -1);
  AmqpProperties(const AmqpProperties&) = delete;
  AmqpProperties& operator=(const AmqpProperties&) = delete;
  const amqp_basic_properties_t& get() const { return props_; }

 private:
  amqp_bytes_t Keep(std::string s);
  amqp_field_value_t Field(const nlohmann::json& v);
  amqp_table_t Table(const nlohmann::json& obj);

  amqp_basic_properties_t props_{};
  std::deque<std::string> strings_;
  std::deque<std::vector<amqp_table_entry_t>> tables_;
  std::deque<std::vector<amqp_field_value_t>> arrays_;
};

// application_headers (or any table) as JSON; unknown kinds become null.
nlohmann::json AmqpTableToJson(const amqp_table_t& table);

}  // namespace stalk
