#include <string_view>

#include "storage/directory_page_sql.hpp"

namespace mssgate::storage {
namespace {

struct TableShape {
  std::string_view name;
  std::string_view columns;
  std::vector<std::string_view> key;  // the page's order
  std::string_view mailbox_column;    // empty: the table has none
  std::string_view holder_column;
};

TableShape shape_of(DirectoryTable table) {
  switch (table) {
    case DirectoryTable::kMailboxes:
      return {"mailbox", "address, type, status", {"address"}, "address", ""};
    case DirectoryTable::kSenders:
      return {"mailbox_sender", "mailbox, sender", {"mailbox", "sender"}, "mailbox", ""};
    case DirectoryTable::kHolders:
      return {"holder", "id, label", {"id"}, "", "id"};
    case DirectoryTable::kAttachments:
      return {
          "mailbox_holder", "holder, mailbox, role", {"holder", "mailbox"}, "mailbox", "holder"};
    case DirectoryTable::kBindings:
      return {"certificate_binding",
              "match_kind, match_value, mailbox, label",
              {"mailbox", "match_kind", "match_value"},
              "mailbox",
              ""};
  }
  return {};
}

}  // namespace

size_t page_key_size(DirectoryTable table) {
  return shape_of(table).key.size();
}

std::vector<std::string> page_key(const Mailbox& row) {
  return {row.address};
}
std::vector<std::string> page_key(const AllowedSender& row) {
  return {row.mailbox, row.sender};
}
std::vector<std::string> page_key(const Holder& row) {
  return {row.id};
}
std::vector<std::string> page_key(const HolderAttachment& row) {
  return {row.holder, row.mailbox};
}
std::vector<std::string> page_key(const CertificateBinding& row) {
  return {row.mailbox, std::string(to_string(row.match)), row.value};
}

PageStatement page_statement(const DirectoryPageQuery& query, char mark) {
  TableShape shape = shape_of(query.table);
  if (!query.after.empty() && query.after.size() != shape.key.size())
    throw StorageError("a page of " + std::string(shape.name) + " starts after a key of " +
                       std::to_string(shape.key.size()) + " columns");
  PageStatement out;
  auto parameter = [&](std::string value) {
    out.params.push_back(std::move(value));
    return mark + std::to_string(out.params.size());
  };
  std::vector<std::string> conditions;
  if (!query.mailbox.empty() && !shape.mailbox_column.empty())
    conditions.push_back(std::string(shape.mailbox_column) + " = " + parameter(query.mailbox));
  if (!query.holder.empty() && !shape.holder_column.empty())
    conditions.push_back(std::string(shape.holder_column) + " = " + parameter(query.holder));
  std::string key_list;
  for (auto column : shape.key)
    key_list += (key_list.empty() ? "" : ", ") + std::string(column);
  if (!query.after.empty()) {
    // A row value comparison: (a, b) > (x, y), which both databases order as ORDER BY a, b.
    std::string after_list;
    for (const auto& value : query.after)
      after_list += (after_list.empty() ? "" : ", ") + parameter(value);
    conditions.push_back("(" + key_list + ") > (" + after_list + ")");
  }
  out.sql = "SELECT " + std::string(shape.columns) + " FROM " + std::string(shape.name);
  for (size_t i = 0; i < conditions.size(); ++i)
    out.sql += (i ? " AND " : " WHERE ") + conditions[i];
  out.sql += " ORDER BY " + key_list + " LIMIT " + std::to_string(query.limit);
  return out;
}

}  // namespace mssgate::storage
