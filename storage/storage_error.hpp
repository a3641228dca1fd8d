#pragma once
// What the stores throw on administration calls and at opening: a sentence for the operator.

#include <stdexcept>
#include <string>

namespace mssgate::storage {

class StorageError : public std::runtime_error {
 public:
  explicit StorageError(const std::string& what) : std::runtime_error(what) {}
};

// A transaction that met another writer's (a deadlock between two gateways): nothing of it was
// kept, and running it again may succeed.
class StorageConflict : public StorageError {
 public:
  using StorageError::StorageError;
};

// A change that the directory's rules refuse (a row already there, a row naming a mailbox or a
// professional that is not there): nothing of it was kept, and running it again will not do.
class StorageRefusal : public StorageError {
 public:
  using StorageError::StorageError;
};

}  // namespace mssgate::storage
