#include "storage/indicator_journal.hpp"

#include <sqlite3.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <ctime>

#include "storage/directory_store.hpp"
#include "storage/sqlite_statement.hpp"

namespace mssgate::storage {
namespace {

namespace json = boost::json;

constexpr int kJournalSchemaVersion = 1;

constexpr const char* kJournalSchema = R"sql(
CREATE TABLE IF NOT EXISTS indicator_event (
  seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
  event_key            TEXT NOT NULL UNIQUE,
  at_ms                INTEGER NOT NULL,
  day                  TEXT NOT NULL,
  direction            TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
  mailbox              TEXT NOT NULL,
  mailbox_type         TEXT NOT NULL,
  auth_mode            TEXT NOT NULL,
  azp                  TEXT NOT NULL,
  nil                  TEXT NOT NULL,
  message_id           TEXT NOT NULL,
  queue_id             TEXT NOT NULL,
  size                 INTEGER NOT NULL,
  recipients           INTEGER NOT NULL,
  to_same_operator     INTEGER NOT NULL,
  to_other_operator    INTEGER NOT NULL,
  to_patient           INTEGER NOT NULL,
  counterpart          TEXT NOT NULL,
  inspected            INTEGER NOT NULL,
  uninspectable_reason TEXT NOT NULL,
  xdm                  INTEGER NOT NULL,
  documents            INTEGER NOT NULL,
  ins                  TEXT NOT NULL,
  claim_codecda        TEXT NOT NULL,
  claim_ins            TEXT NOT NULL,
  claim_xdm_subject    INTEGER NOT NULL,
  mismatches           TEXT NOT NULL,
  mes_fin              INTEGER NOT NULL,
  mdn                  INTEGER NOT NULL,
  mdn_requested        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS indicator_event_day ON indicator_event (day, mailbox);
CREATE TABLE IF NOT EXISTS indicator_document (
  seq         INTEGER NOT NULL REFERENCES indicator_event (seq),
  position    INTEGER NOT NULL,
  code        TEXT NOT NULL,
  code_system TEXT NOT NULL,
  ins         TEXT NOT NULL,
  PRIMARY KEY (seq, position)
);
CREATE TABLE IF NOT EXISTS connection_day (
  mailbox      TEXT NOT NULL,
  day          TEXT NOT NULL,
  auth_mode    TEXT NOT NULL,
  protocol     TEXT NOT NULL,
  mailbox_type TEXT NOT NULL,
  connections  INTEGER NOT NULL,
  last_at_ms   INTEGER NOT NULL,
  PRIMARY KEY (mailbox, day, auth_mode, protocol)
);
CREATE TABLE IF NOT EXISTS journal_meta (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
)sql";

std::string joined(const std::vector<std::string>& values) {
  std::string out;
  for (const auto& v : values)
    out += (out.empty() ? "" : ",") + v;
  return out;
}

std::string iso_time(int64_t at_ms) {
  std::time_t seconds = static_cast<std::time_t>(at_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[96];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(at_ms % 1000));
  return text;
}

json::object to_json(int64_t seq, const IndicatorEvent& e) {
  json::object o;
  o["event"] = "indicator";
  o["seq"] = seq;
  o["key"] = e.key;
  o["time"] = iso_time(e.at_ms);
  o["day"] = e.day;
  o["direction"] = e.direction;
  o["mailbox"] = e.mailbox;
  o["mailbox_type"] = e.mailbox_type;
  o["auth_mode"] = e.auth_mode;
  if (!e.azp.empty()) o["azp"] = e.azp;
  if (!e.nil.empty()) o["nil"] = e.nil;
  if (!e.message_id.empty()) o["message_id"] = e.message_id;
  if (!e.queue_id.empty()) o["queue_id"] = e.queue_id;
  o["size"] = e.size;
  o["recipients"] = e.recipients;
  if (e.direction == "sent") {
    o["to_same_operator"] = e.to_same_operator;
    o["to_other_operator"] = e.to_other_operator;
    o["to_patient"] = e.to_patient;
  } else {
    o["counterpart"] = e.counterpart;
  }
  o["inspected"] = e.inspected;
  if (!e.inspected) o["uninspectable_reason"] = e.uninspectable_reason;
  o["xdm"] = e.xdm;
  json::array documents;
  for (const auto& d : e.documents)
    documents.push_back(
        json::object{{"code", d.code}, {"code_system", d.code_system}, {"ins", d.ins}});
  o["documents"] = std::move(documents);
  o["ins"] = e.ins;
  json::object claims;
  if (!e.claim_codecda.empty()) claims["codecda"] = e.claim_codecda;
  if (!e.claim_ins.empty()) claims["ins"] = e.claim_ins;
  claims["xdm_subject"] = e.claim_xdm_subject;
  o["claims"] = std::move(claims);
  json::array mismatches;
  for (const auto& m : e.mismatches)
    mismatches.push_back(json::string(m));
  o["mismatches"] = std::move(mismatches);
  o["mes_fin"] = e.mes_fin;
  o["mdn"] = e.mdn;
  o["mdn_requested"] = e.mdn_requested;
  return o;
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  for (size_t start = 0; start < text.size();) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

// An event as catch_up_log's query returns it (seq in column 0), with its documents.
IndicatorEvent event_from_row(const Statement& rows, Statement& documents) {
  IndicatorEvent e;
  e.key = rows.text(1);
  e.at_ms = rows.integer(2);
  e.day = rows.text(3);
  e.direction = rows.text(4);
  e.mailbox = rows.text(5);
  e.mailbox_type = rows.text(6);
  e.auth_mode = rows.text(7);
  e.azp = rows.text(8);
  e.nil = rows.text(9);
  e.message_id = rows.text(10);
  e.queue_id = rows.text(11);
  e.size = static_cast<uint64_t>(rows.integer(12));
  e.recipients = static_cast<unsigned>(rows.integer(13));
  e.to_same_operator = static_cast<unsigned>(rows.integer(14));
  e.to_other_operator = static_cast<unsigned>(rows.integer(15));
  e.to_patient = static_cast<unsigned>(rows.integer(16));
  e.counterpart = rows.text(17);
  e.inspected = rows.integer(18) != 0;
  e.uninspectable_reason = rows.text(19);
  e.xdm = rows.integer(20) != 0;
  e.ins = rows.text(21);
  e.claim_codecda = rows.text(22);
  e.claim_ins = rows.text(23);
  e.claim_xdm_subject = rows.integer(24) != 0;
  e.mismatches = split_commas(rows.text(25));
  e.mes_fin = rows.integer(26) != 0;
  e.mdn = rows.integer(27) != 0;
  e.mdn_requested = rows.integer(28) != 0;
  documents.reset();
  documents.bind(1, rows.integer(0));
  while (documents.step() == SQLITE_ROW)
    e.documents.push_back({documents.text(0), documents.text(1), documents.text(2)});
  return e;
}

void exec(sqlite3* db, const char* sql) {
  exec_sql(db, sql, "indicator journal");
}

}  // namespace

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string day_of(int64_t at_ms, bool utc) {
  std::time_t seconds = static_cast<std::time_t>(at_ms / 1000);
  std::tm tm{};
  if (utc) {
    gmtime_r(&seconds, &tm);
  } else {
    localtime_r(&seconds, &tm);
  }
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return text;
}

IndicatorJournal::IndicatorJournal(Options options) : options_(std::move(options)) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(options_.path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw StorageError("cannot open indicator journal " + options_.path + ": " + message);
  }
  try {
    sqlite3_busy_timeout(db_, 10000);
    exec(db_, "PRAGMA journal_mode = WAL");
    // In WAL mode, FULL syncs the log at every commit: a committed event survives a power cut.
    exec(db_, "PRAGMA synchronous = FULL");
    Statement version(db_, "PRAGMA user_version");
    int current = version.step() == SQLITE_ROW ? static_cast<int>(version.integer(0)) : 0;
    if (current > kJournalSchemaVersion) {
      throw StorageError("indicator journal " + options_.path + " has schema version " +
                         std::to_string(current) + ", newer than this mssgate knows (" +
                         std::to_string(kJournalSchemaVersion) + ")");
    }
    exec(db_, "BEGIN IMMEDIATE");
    exec(db_, kJournalSchema);
    exec(db_, ("PRAGMA user_version = " + std::to_string(kJournalSchemaVersion)).c_str());
    exec(db_, "COMMIT");
    Statement position(db_, "SELECT value FROM journal_meta WHERE name = 'log_position'");
    if (position.step() == SQLITE_ROW) log_position_ = position.integer(0);
    open_log();
    catch_up_log();
  } catch (...) {
    if (log_) std::fclose(log_);
    sqlite3_close(db_);
    throw;
  }
  thread_ = std::thread([this] { writer(); });
}

IndicatorJournal::~IndicatorJournal() {
  stop();
  if (log_) std::fclose(log_);
  sqlite3_close(db_);
}

void IndicatorJournal::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void IndicatorJournal::record(IndicatorEvent event, Done done) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back({std::move(event), std::move(done)});
  }
  wake_.notify_one();
}

void IndicatorJournal::note_connection(ConnectionEvent event) {
  {
    std::lock_guard lock(mutex_);
    connections_.push_back(std::move(event));
  }
  wake_.notify_one();
}

void IndicatorJournal::reopen_log() {
  {
    std::lock_guard lock(mutex_);
    reopen_ = true;
  }
  wake_.notify_one();
}

IndicatorJournal::Stats IndicatorJournal::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void IndicatorJournal::open_log() {
  if (options_.log_path.empty()) return;
  if (log_) std::fclose(log_);
  log_ = std::fopen(options_.log_path.c_str(), "ae");
  // Unwritable log: the journal still holds every event; the log catches up when reopened.
}

void IndicatorJournal::writer() {
  std::vector<Pending> batch;
  std::vector<ConnectionEvent> connections;
  for (;;) {
    bool reopen = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock,
                 [&] { return stop_ || reopen_ || !queue_.empty() || !connections_.empty(); });
      if (queue_.empty() && connections_.empty() && !reopen_ && stop_) return;
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      connections.swap(connections_);
      reopen = reopen_;
      reopen_ = false;
    }
    if (reopen) {
      open_log();
      catch_up_log();
    }
    if (!batch.empty() || !connections.empty()) commit(batch, connections);
    batch.clear();
    connections.clear();
  }
}

void IndicatorJournal::commit(std::vector<Pending>& events,
                              std::vector<ConnectionEvent>& connections) {
  std::vector<std::pair<int64_t, const IndicatorEvent*>> written;
  uint64_t duplicates = 0;
  bool ok = true;
  try {
    exec(db_, "BEGIN IMMEDIATE");
    Statement insert(db_,
                     "INSERT OR IGNORE INTO indicator_event (event_key, at_ms, day, direction, "
                     "mailbox, mailbox_type, auth_mode, azp, nil, message_id, queue_id, size, "
                     "recipients, to_same_operator, to_other_operator, to_patient, counterpart, "
                     "inspected, uninspectable_reason, xdm, documents, ins, claim_codecda, "
                     "claim_ins, claim_xdm_subject, mismatches, mes_fin, mdn, mdn_requested) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
                     "?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)");
    Statement document(db_,
                       "INSERT INTO indicator_document (seq, position, code, code_system, ins) "
                       "VALUES (?1, ?2, ?3, ?4, ?5)");
    for (const auto& p : events) {
      const IndicatorEvent& e = p.event;
      insert.reset();
      insert.bind(1, e.key).bind(2, e.at_ms).bind(3, e.day).bind(4, e.direction);
      insert.bind(5, e.mailbox).bind(6, e.mailbox_type).bind(7, e.auth_mode).bind(8, e.azp);
      insert.bind(9, e.nil).bind(10, e.message_id).bind(11, e.queue_id);
      insert.bind(12, static_cast<int64_t>(e.size)).bind(13, int64_t{e.recipients});
      insert.bind(14, int64_t{e.to_same_operator}).bind(15, int64_t{e.to_other_operator});
      insert.bind(16, int64_t{e.to_patient}).bind(17, e.counterpart);
      insert.bind(18, int64_t{e.inspected}).bind(19, e.uninspectable_reason);
      insert.bind(20, int64_t{e.xdm}).bind(21, static_cast<int64_t>(e.documents.size()));
      insert.bind(22, e.ins).bind(23, e.claim_codecda).bind(24, e.claim_ins);
      insert.bind(25, int64_t{e.claim_xdm_subject}).bind(26, joined(e.mismatches));
      insert.bind(27, int64_t{e.mes_fin})
          .bind(28, int64_t{e.mdn})
          .bind(29, int64_t{e.mdn_requested});
      if (insert.step() != SQLITE_DONE) throw StorageError(sqlite3_errmsg(db_));
      if (sqlite3_changes(db_) == 0) {
        ++duplicates;  // already counted: a redelivery, or a replay
        continue;
      }
      int64_t seq = sqlite3_last_insert_rowid(db_);
      written.emplace_back(seq, &e);
      for (size_t i = 0; i < e.documents.size(); ++i) {
        const auto& d = e.documents[i];
        document.reset();
        document.bind(1, seq).bind(2, static_cast<int64_t>(i)).bind(3, d.code);
        document.bind(4, d.code_system).bind(5, d.ins);
        if (document.step() != SQLITE_DONE) throw StorageError(sqlite3_errmsg(db_));
      }
    }
    Statement connection(
        db_,
        "INSERT INTO connection_day (mailbox, day, auth_mode, protocol, mailbox_type, "
        "connections, last_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6) "
        "ON CONFLICT (mailbox, day, auth_mode, protocol) DO UPDATE SET "
        "connections = connections + 1, last_at_ms = max(last_at_ms, excluded.last_at_ms), "
        "mailbox_type = excluded.mailbox_type");
    for (const auto& c : connections) {
      connection.reset();
      connection.bind(1, c.mailbox).bind(2, c.day).bind(3, c.auth_mode).bind(4, c.protocol);
      connection.bind(5, c.mailbox_type).bind(6, c.at_ms);
      if (connection.step() != SQLITE_DONE) throw StorageError(sqlite3_errmsg(db_));
    }
    if (log_position_dirty_) {
      Statement position(db_,
                         "INSERT INTO journal_meta (name, value) VALUES ('log_position', ?1) "
                         "ON CONFLICT (name) DO UPDATE SET value = excluded.value");
      position.bind(1, log_position_);
      if (position.step() != SQLITE_DONE) throw StorageError(sqlite3_errmsg(db_));
    }
    exec(db_, "COMMIT");
    log_position_dirty_ = false;
  } catch (const std::exception&) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    ok = false;
    written.clear();
  }
  {
    std::lock_guard lock(mutex_);
    if (ok) {
      stats_.recorded += written.size();
      stats_.duplicates += duplicates;
      stats_.connections += connections.size();
      ++stats_.commits;
    } else {
      stats_.failed += events.size();
    }
  }
  for (auto& p : events) {
    if (p.done) p.done(ok);
  }
  if (ok) write_log(written);
}

void IndicatorJournal::write_log(
    const std::vector<std::pair<int64_t, const IndicatorEvent*>>& written) {
  if (!log_ || written.empty()) return;
  std::string lines;
  for (const auto& [seq, event] : written) {
    if (seq <= log_position_) continue;
    lines += json::serialize(to_json(seq, *event));
    lines += '\n';
  }
  if (std::fwrite(lines.data(), 1, lines.size(), log_) == lines.size() && std::fflush(log_) == 0) {
    log_position_ = written.back().first;
    log_position_dirty_ = true;  // saved with the next commit
  } else {
    // The log stops here; reopening it (SIGHUP, restart) writes everything from this point.
    std::fclose(log_);
    log_ = nullptr;
  }
}

// Events committed but not in the log (a crash between the two, or an unwritable log): written
// now, from the journal, a bounded batch at a time. A line may appear twice after a crash; its
// "key" tells.
void IndicatorJournal::catch_up_log() {
  constexpr int64_t kBatch = 500;
  Statement rows(db_,
                 "SELECT seq, event_key, at_ms, day, direction, mailbox, mailbox_type, auth_mode, "
                 "azp, nil, message_id, queue_id, size, recipients, to_same_operator, "
                 "to_other_operator, to_patient, counterpart, inspected, uninspectable_reason, "
                 "xdm, ins, claim_codecda, claim_ins, claim_xdm_subject, mismatches, mes_fin, mdn, "
                 "mdn_requested FROM indicator_event WHERE seq > ?1 ORDER BY seq LIMIT ?2");
  Statement documents(
      db_,
      "SELECT code, code_system, ins FROM indicator_document WHERE seq = ?1 ORDER BY position");
  while (log_) {
    rows.reset();
    rows.bind(1, log_position_).bind(2, kBatch);
    std::vector<std::pair<int64_t, IndicatorEvent>> events;
    while (rows.step() == SQLITE_ROW)
      events.emplace_back(rows.integer(0), event_from_row(rows, documents));
    if (events.empty()) return;
    std::vector<std::pair<int64_t, const IndicatorEvent*>> written;
    for (const auto& [seq, e] : events)
      written.emplace_back(seq, &e);
    write_log(written);
    if (static_cast<int64_t>(events.size()) < kBatch) return;
  }
}

}  // namespace mssgate::storage
