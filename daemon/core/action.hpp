#pragma once

#include <string>
#include <utility>

namespace mssgate::core {

// What a core asks its session to do next: one of the core's own kinds, the text it goes with
// (bytes to write, a line to send, a mailbox to open…) and one flag whose meaning each core
// documents for the kinds that have one.
template <class Kind>
struct CoreAction {
  CoreAction(Kind kind_ = Kind{}, std::string text_ = {}, bool option_ = false)
      : kind(kind_), text(std::move(text_)), option(option_) {}
  Kind kind;
  std::string text;
  bool option;
};

}  // namespace mssgate::core
