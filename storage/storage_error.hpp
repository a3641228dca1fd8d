#pragma once
// What the stores throw on administration calls and at opening: a sentence for the operator.

#include <stdexcept>
#include <string>

namespace mssgate::storage {

class StorageError : public std::runtime_error {
 public:
  explicit StorageError(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace mssgate::storage
