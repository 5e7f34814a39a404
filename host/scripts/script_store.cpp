// ScriptStore: the database half of the script store (see script_store.h;
// validation and hashing are in script_validation.cpp).
#include "host/scripts/script_store.h"

#include "host/pg/session.h"

namespace quern::scripts {
namespace {

// Columns of a ScriptVersion, by the names version_from_row reads.
#define QUERN_SCRIPT_COLS(content)                                  \
  "path, hash, language, " content                                  \
  " AS content, settings::text AS settings, summary, deployed_by, " \
  "(extract(epoch FROM created_at) * 1000000)::bigint AS created_us, archived_at IS NOT NULL AS archived"
#define QUERN_NEWEST " ORDER BY created_at DESC, id DESC"

// Serializes deploys to one path ('qrnS' + the path's hash), so two
// concurrent identical deploys cannot both decide to insert.
constexpr const char* kLockPath = "SELECT pg_advisory_xact_lock(1903324755, hashtext($1))";
constexpr const char* kUnarchive =
    "UPDATE quern.scripts SET archived_at = NULL WHERE path = $1 AND archived_at IS NOT NULL";
constexpr const char* kInsert =
    "INSERT INTO quern.scripts (path, hash, language, content, settings, summary, deployed_by) "
    "VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7) RETURNING " QUERN_SCRIPT_COLS("content");
constexpr const char* kLatest =
    "SELECT " QUERN_SCRIPT_COLS("content") " FROM quern.scripts WHERE path = $1" QUERN_NEWEST " LIMIT 1";
constexpr const char* kByHash =
    "SELECT " QUERN_SCRIPT_COLS("content") " FROM quern.scripts WHERE hash = $1" QUERN_NEWEST " LIMIT 1";
constexpr const char* kList =
    "SELECT * FROM (SELECT DISTINCT ON (path) " QUERN_SCRIPT_COLS("''") " FROM quern.scripts "
    "ORDER BY path, created_at DESC, id DESC) latest WHERE $1 OR NOT latest.archived ORDER BY path";
constexpr const char* kVersions =
    "SELECT " QUERN_SCRIPT_COLS("''") " FROM quern.scripts WHERE path = $1" QUERN_NEWEST;
// The EXISTS sees the snapshot before the update: whether the path has rows
// at all, archived already or not.
constexpr const char* kArchive =
    "WITH u AS (UPDATE quern.scripts SET archived_at = now() WHERE path = $1 AND archived_at IS NULL "
    "RETURNING 1) "
    "SELECT EXISTS (SELECT 1 FROM quern.scripts WHERE path = $1) AS existed";

#undef QUERN_SCRIPT_COLS
#undef QUERN_NEWEST

ScriptVersion version_from_row(const pqxx::row& row) {
  ScriptVersion v;
  v.path = row["path"].as<std::string>();
  v.hash = row["hash"].as<std::string>();
  v.language = row["language"].as<std::string>();
  v.content = row["content"].as<std::string>();
  v.settings = nlohmann::json::parse(row["settings"].c_str()).get<ScriptSettings>();
  v.summary = row["summary"].as<std::string>();
  v.deployed_by = row["deployed_by"].as<std::string>();
  v.created_at = pg::from_epoch_us(row["created_us"].as<int64_t>());
  v.archived = row["archived"].as<bool>();
  return v;
}

}  // namespace

struct ScriptStore::Impl {
  explicit Impl(std::shared_ptr<pg::Session> session) : db(std::move(session)) {
    static const pg::Statement kStatements[] = {
        {"scripts_lock_path", kLockPath}, {"scripts_unarchive", kUnarchive}, {"scripts_insert", kInsert},
        {"scripts_latest", kLatest},      {"scripts_by_hash", kByHash},      {"scripts_list", kList},
        {"scripts_versions", kVersions},  {"scripts_archive", kArchive}};
    db->add_statements(kStatements);
  }
  std::shared_ptr<pg::Session> db;
};

ScriptStore::ScriptStore() = default;
ScriptStore::~ScriptStore() = default;

StatusOr<std::unique_ptr<ScriptStore>> ScriptStore::connect(const std::string& database_url) {
  auto session = std::make_shared<pg::Session>(database_url);
  if (Status s = session->open("connect to the script store"); !s) return s;
  return over(std::move(session));
}

std::unique_ptr<ScriptStore> ScriptStore::over(std::shared_ptr<pg::Session> session) {
  std::unique_ptr<ScriptStore> store(new ScriptStore());
  store->impl_ = std::make_unique<Impl>(std::move(session));
  return store;
}

StatusOr<ScriptVersion> ScriptStore::deploy(const NewScript& s) {
  if (Status st = validate(s); !st) return st;
  const std::string hash = script_hash(s.language, s.settings, s.content);
  const std::string settings = nlohmann::json(s.settings).dump();
  return impl_->db->run("deploy script", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_prepared("scripts_lock_path", s.path);
    tx.exec_prepared("scripts_unarchive", s.path);
    auto latest = tx.exec_prepared("scripts_latest", s.path);
    ScriptVersion v;
    if (!latest.empty() && latest[0]["hash"].as<std::string>() == hash) {
      v = version_from_row(latest[0]);
    } else {
      v = version_from_row(tx.exec_prepared1("scripts_insert", s.path, hash, s.language, s.content, settings,
                                             s.summary, s.deployed_by));
    }
    tx.commit();
    return v;
  });
}

StatusOr<std::optional<ScriptVersion>> ScriptStore::latest(const std::string& path) {
  return impl_->db->run("get script", [&](pqxx::connection& c) -> std::optional<ScriptVersion> {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared("scripts_latest", path);
    if (r.empty()) return std::nullopt;
    ScriptVersion v = version_from_row(r[0]);
    if (v.archived) return std::nullopt;
    return v;
  });
}

StatusOr<std::optional<ScriptVersion>> ScriptStore::by_hash(const std::string& hash) {
  return impl_->db->run("get script version", [&](pqxx::connection& c) -> std::optional<ScriptVersion> {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared("scripts_by_hash", hash);
    if (r.empty()) return std::nullopt;
    return version_from_row(r[0]);
  });
}

StatusOr<std::vector<ScriptVersion>> ScriptStore::list(bool include_archived) {
  return impl_->db->run("list scripts", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared("scripts_list", include_archived);
    std::vector<ScriptVersion> out;
    out.reserve(r.size());
    for (const auto& row : r) out.push_back(version_from_row(row));
    return out;
  });
}

StatusOr<std::vector<ScriptVersion>> ScriptStore::versions(const std::string& path) {
  return impl_->db->run("list script versions", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared("scripts_versions", path);
    std::vector<ScriptVersion> out;
    out.reserve(r.size());
    for (const auto& row : r) out.push_back(version_from_row(row));
    return out;
  });
}

StatusOr<bool> ScriptStore::archive(const std::string& path) {
  return impl_->db->run("archive script", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return tx.exec_prepared1("scripts_archive", path)["existed"].as<bool>();
  });
}

}  // namespace quern::scripts
