#pragma once
// Builds the indicator events of messages and sign-ins from what the sessions know. No I/O.

#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "daemon/services/inspection_pool.hpp"
#include "protocol/message_inspector.hpp"
#include "storage/directory_lookup.hpp"
#include "storage/indicator_event.hpp"

namespace mssgate::daemon {

protocol::InspectorLimits inspector_limits(const config::IndicatorsConfig& config);
// How each message is inspected on the inspection pool: its caps, budget and queue.
InspectionSettings inspection_settings(const config::IndicatorsConfig& config);

using storage::Counterpart;

// Whose address this is: a patient's Mon Espace Santé address, one of this operator's
// (a configured domain, or a mailbox of the directory), or another operator's.
Counterpart counterpart_of(std::string_view address, const config::IndicatorsConfig& config,
                           const storage::DirectoryLookup& directory);

// The mailbox's type as the directory says; nullopt ("unknown") when it does not know it or
// cannot answer.
storage::RecordedMailboxType mailbox_type_of(const std::string& mailbox,
                                             const storage::DirectoryLookup& directory);

// The event's fields that come from the message itself.
void fill_from_facts(storage::IndicatorEvent& event, const protocol::MessageFacts& facts);

// A new event stamped now, with the day in the configured time zone.
storage::IndicatorEvent new_indicator_event(storage::Direction direction, std::string mailbox,
                                            const config::IndicatorsConfig& config);

// 128 random bits, hex: the key of a sent message's event.
std::string random_key();

}  // namespace mssgate::daemon
