#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "replayrail/store/local/sqlite.h"

namespace replayrail::store::local {

// The database's schema version (PRAGMA user_version); bumped with every change to schema.cc.
// Older versions are migrated when opened (schema.cc).
inline constexpr int kSchemaVersion = 3;
// PRAGMA application_id: marks a file as a ReplayRail database ("RRL1").
inline constexpr int kApplicationId = 0x52524c31;

// How commits reach the disk.
//   always: acknowledged = on disk: every COMMIT fsyncs the WAL (synchronous=FULL).
//   batch:  acknowledged at commit, on disk within an interval (LocalStore::Options, 1 s by
//           default): the writer fsyncs the WAL then (synchronous=NORMAL, which also fsyncs at
//           checkpoints). Survives a process crash; a power cut loses at most that interval.
//   never:  left to the OS: survives a process crash, not an OS crash or a power cut (OFF).
enum class Fsync { always, batch, never };

// "always", "batch" or "never"; nullopt for anything else.
std::optional<Fsync> parse_fsync(std::string_view name);

// Applies the connection pragmas every connection uses.
result<void> configure(sqlite::Connection& db, Fsync fsync);

// Creates the schema in an empty database, or checks that an existing one is ours and of a
// version this build understands, migrating an older one. Errors say which of those it was.
result<void> prepare_schema(sqlite::Connection& db);

}  // namespace replayrail::store::local
