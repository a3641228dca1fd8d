#pragma once

#include <memory>
#include <string>

#include "storage/directory_snapshot.hpp"
#include "storage/postgresql.hpp"

namespace mssgate::storage {

// Where directory snapshots come from: a database read whole, in one consistent read, and
// asked now and then whether it changed since. How a change is noticed is the source's
// business (SQLite: PRAGMA data_version; a server database: notifications or a change
// counter). Used from one thread at a time.
class DirectorySource {
 public:
  virtual ~DirectorySource() = default;

  // Reads every table into `builder`, all in one transaction. Throws StorageError.
  virtual void read_all(DirectorySnapshotBuilder& builder) = 0;
  // Whether the directory changed since the last read_all began (true before the first). Cheap:
  // asked at every refresh interval. Throws StorageError when it cannot tell.
  virtual bool changed() = 0;
  // What it reads, for the log ("sqlite:/var/lib/mssgate/directory.db").
  virtual std::string name() const = 0;
};

// A new snapshot of `source`. Throws StorageError.
std::shared_ptr<const DirectorySnapshot> load_snapshot(DirectorySource& source);

// The SQLite directory at `path`, created or migrated first as the store would, then read on a
// connection of its own that never writes. A file replaced at the same path (a restored backup)
// is opened again, not created. Throws StorageError.
std::unique_ptr<DirectorySource> open_sqlite_directory_source(const std::string& path);

// The PostgreSQL directory, created or migrated first, then read in REPEATABLE READ
// transactions; a change is seen from the change counter that every write moves (a trigger per
// table). A failed connection is opened again at the next call. Throws StorageError.
std::unique_ptr<DirectorySource> open_postgresql_directory_source(
    const PostgresqlSettings& settings);

}  // namespace mssgate::storage
