// Stalk — Celery monitoring server.
#include "control/amqp_message.h"

#include <algorithm>

namespace stalk {
namespace {

std::string Text(amqp_bytes_t b) {
  return b.len == 0 ? std::string() : std::string(static_cast<const char*>(b.bytes), b.len);
}

nlohmann::json FieldToJson(const amqp_field_value_t& v) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
      return v.value.boolean != 0;
    case AMQP_FIELD_KIND_I8:
      return v.value.i8;
    case AMQP_FIELD_KIND_U8:
      return v.value.u8;
    case AMQP_FIELD_KIND_I16:
      return v.value.i16;
    case AMQP_FIELD_KIND_U16:
      return v.value.u16;
    case AMQP_FIELD_KIND_I32:
      return v.value.i32;
    case AMQP_FIELD_KIND_U32:
      return v.value.u32;
    case AMQP_FIELD_KIND_I64:
      return v.value.i64;
    case AMQP_FIELD_KIND_U64:
      return v.value.u64;
    case AMQP_FIELD_KIND_TIMESTAMP:
      return v.value.u64;
    case AMQP_FIELD_KIND_F32:
      return v.value.f32;
    case AMQP_FIELD_KIND_F64:
      return v.value.f64;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
      return Text(v.value.bytes);
    case AMQP_FIELD_KIND_TABLE:
      return AmqpTableToJson(v.value.table);
    case AMQP_FIELD_KIND_ARRAY: {
      nlohmann::json a = nlohmann::json::array();
      for (int i = 0; i < v.value.array.num_entries; ++i)
        a.push_back(FieldToJson(v.value.array.entries[i]));
      return a;
    }
    default:
      return nullptr;
  }
}

}  // namespace

nlohmann::json AmqpTableToJson(const amqp_table_t& table) {
  nlohmann::json out = nlohmann::json::object();
  for (int i = 0; i < table.num_entries; ++i) {
    out[Text(table.entries[i].key)] = FieldToJson(table.entries[i].value);
  }
  return out;
}

amqp_bytes_t AmqpProperties::Keep(std::string s) {
  strings_.push_back(std::move(s));
  const std::string& k = strings_.back();
  amqp_bytes_t b;
  b.len = k.size();
  b.bytes = const_cast<char*>(k.data());
  return b;
}

amqp_field_value_t AmqpProperties::Field(const nlohmann::json& v) {
  amqp_field_value_t f{};
  if (v.is_boolean()) {
    f.kind = AMQP_FIELD_KIND_BOOLEAN;
    f.value.boolean = v.get<bool>() ? 1 : 0;
  } else if (v.is_number_integer()) {
    f.kind = AMQP_FIELD_KIND_I64;
    f.value.i64 = v.is_number_unsigned() ? static_cast<int64_t>(v.get<uint64_t>()) : v.get<int64_t>();
  } else if (v.is_number_float()) {
    f.kind = AMQP_FIELD_KIND_F64;
    f.value.f64 = v.get<double>();
  } else if (v.is_string()) {
    f.kind = AMQP_FIELD_KIND_UTF8;
    f.value.bytes = Keep(v.get<std::string>());
  } else if (v.is_object()) {
    f.kind = AMQP_FIELD_KIND_TABLE;
    f.value.table = Table(v);
  } else if (v.is_array()) {
    arrays_.emplace_back(v.size());
    auto& arr = arrays_.back();
    for (size_t i = 0; i < v.size(); ++i)
      arr[i] = Field(v[i]);
    f.kind = AMQP_FIELD_KIND_ARRAY;
    f.value.array.num_entries = static_cast<int>(arr.size());
    f.value.array.entries = arr.empty() ? nullptr : arr.data();
  } else {
    f.kind = AMQP_FIELD_KIND_VOID;
  }
  return f;
}

amqp_table_t AmqpProperties::Table(const nlohmann::json& obj) {
  tables_.emplace_back(obj.size());
  auto& entries = tables_.back();
  size_t i = 0;
  for (auto it = obj.begin(); it != obj.end(); ++it, ++i) {
    entries[i].key = Keep(it.key());
    entries[i].value = Field(it.value());
  }
  amqp_table_t t;
  t.num_entries = static_cast<int>(entries.size());
  t.entries = entries.empty() ? nullptr : entries.data();
  return t;
}

AmqpProperties::AmqpProperties(const KombuMessage& m, int priority) {
  props_._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG | AMQP_BASIC_HEADERS_FLAG;
  props_.content_type = Keep(m.content_type);
  props_.content_encoding = Keep(m.content_encoding);
  props_.headers = Table(m.headers.is_object() ? m.headers : nlohmann::json::object());
  const nlohmann::json& p = m.properties;
  if (!p.is_object())
    return;
  if (auto it = p.find("delivery_mode"); it != p.end() && it->is_number_integer()) {
    props_._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
    props_.delivery_mode = static_cast<uint8_t>(it->get<int>());
  }
  if (priority >= 0) {
    props_._flags |= AMQP_BASIC_PRIORITY_FLAG;
    props_.priority = static_cast<uint8_t>(std::min(priority, 255));
  } else if (auto it = p.find("priority"); it != p.end() && it->is_number_integer()) {
    props_._flags |= AMQP_BASIC_PRIORITY_FLAG;
    props_.priority = static_cast<uint8_t>(it->get<int>());
  }
  auto text = [&](const char* key, amqp_flags_t flag, amqp_bytes_t& out) {
    if (auto it = p.find(key); it != p.end() && it->is_string()) {
      props_._flags |= flag;
      out = Keep(it->get<std::string>());
    }
  };
  text("correlation_id", AMQP_BASIC_CORRELATION_ID_FLAG, props_.correlation_id);
  text("reply_to", AMQP_BASIC_REPLY_TO_FLAG, props_.reply_to);
  text("expiration", AMQP_BASIC_EXPIRATION_FLAG, props_.expiration);
}

}  // namespace stalk
