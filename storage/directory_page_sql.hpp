#pragma once
// The query of a directory page (DirectoryPageQuery), shared by the SQLite and PostgreSQL
// stores: keyset paging, so that a page costs the same at the millionth row as at the first.

#include <string>
#include <vector>

#include "storage/directory_store.hpp"

namespace mssgate::storage {

struct PageStatement {
  std::string sql;                  // parameters numbered from 1, written `<mark>N`
  std::vector<std::string> params;  // in that order
};

// The SELECT of `query`'s page; `mark` is '?' for SQLite, '$' for PostgreSQL. Its columns are
// those the stores read rows from: mailbox (address, type, status), mailbox_sender (mailbox,
// sender), holder (id, label), mailbox_holder (holder, mailbox, role), certificate_binding
// (match_kind, match_value, mailbox, label). Throws StorageError when `after` has not the
// table's key size.
PageStatement page_statement(const DirectoryPageQuery& query, char mark);

}  // namespace mssgate::storage
