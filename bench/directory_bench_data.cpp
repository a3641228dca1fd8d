#include "bench/directory_bench_data.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace mssgate::bench {
namespace {

using protocol::MailboxStatus;
using protocol::MailboxType;

constexpr std::string_view kFirstNames[] = {
    "jean",     "marie",       "pierre",       "anne",      "michel",    "isabelle", "philippe",
    "nathalie", "alain",       "sylvie",       "patrick",   "catherine", "nicolas",  "christine",
    "laurent",  "sophie",      "christophe",   "valerie",   "francois",  "sandrine", "eric",
    "claire",   "olivier",     "julie",        "thomas",    "camille",   "antoine",  "emilie",
    "julien",   "caroline",    "sebastien",    "aurelie",   "david",     "celine",   "vincent",
    "helene",   "jean-pierre", "marie-claude", "guillaume", "lea",       "hugo",     "manon",
    "mathieu",  "elodie",      "benoit",       "laure",     "yves",      "agnes",    "remi",
    "chloe"};
constexpr std::string_view kLastNames[] = {
    "martin",    "bernard",    "thomas",   "petit",    "robert",   "richard",   "durand",
    "dubois",    "moreau",     "laurent",  "simon",    "michel",   "lefebvre",  "leroy",
    "roux",      "david",      "bertrand", "morel",    "fournier", "girard",    "bonnet",
    "dupont",    "lambert",    "fontaine", "rousseau", "vincent",  "muller",    "lefevre",
    "faure",     "andre",      "mercier",  "blanc",    "guerin",   "boyer",     "garnier",
    "chevalier", "francois",   "legrand",  "gauthier", "garcia",   "perrin",    "robin",
    "clement",   "morin",      "nicolas",  "henry",    "roussel",  "mathieu",   "gautier",
    "masson",    "marchand",   "duval",    "denis",    "dumont",   "marie",     "lemaire",
    "noel",      "meyer",      "dufour",   "meunier",  "brun",     "blanchard", "giraud",
    "joly",      "riviere",    "lucas",    "brunet",   "gaillard", "barbier",   "arnaud",
    "martinez",  "gerard",     "roche",    "renard",   "schmitt",  "roy",       "leroux",
    "colin",     "vidal",      "caron",    "picard",   "roger",    "fabre",     "aubert",
    "lemoine",   "renaud",     "dumas",    "lacroix",  "olivier",  "philippe",  "bourgeois",
    "pierre",    "benoit",     "rey",      "leclerc",  "payet",    "rolland",   "leclercq",
    "guillaume", "lecomte",    "lopez",    "jean",     "dupuy",    "guillot",   "hubert",
    "berger",    "carpentier", "sanchez",  "dupuis",   "moulin",   "louis",     "deschamps"};
constexpr std::string_view kProfessions[] = {"medecin",
                                             "pharmacien",
                                             "infirmier",
                                             "sage-femme",
                                             "masseur-kinesitherapeute",
                                             "chirurgien-dentiste"};
constexpr std::string_view kEstablishments[] = {
    "ch", "chu", "clinique", "ehpad", "labo", "pharmacie", "cabinet", "centre-sante", "imagerie"};
constexpr std::string_view kCities[] = {"paris",
                                        "marseille",
                                        "lyon",
                                        "toulouse",
                                        "nice",
                                        "nantes",
                                        "montpellier",
                                        "strasbourg",
                                        "bordeaux",
                                        "lille",
                                        "rennes",
                                        "reims",
                                        "toulon",
                                        "saint-etienne",
                                        "le-havre",
                                        "grenoble",
                                        "dijon",
                                        "angers",
                                        "nimes",
                                        "villeurbanne",
                                        "clermont-ferrand",
                                        "le-mans",
                                        "aix-en-provence",
                                        "brest",
                                        "tours",
                                        "amiens",
                                        "limoges",
                                        "annecy",
                                        "perpignan",
                                        "boulogne-billancourt",
                                        "metz",
                                        "besancon",
                                        "orleans",
                                        "saint-denis",
                                        "argenteuil",
                                        "rouen",
                                        "montreuil",
                                        "mulhouse",
                                        "caen",
                                        "nancy",
                                        "tourcoing",
                                        "roubaix",
                                        "nanterre",
                                        "vitry-sur-seine",
                                        "avignon",
                                        "creteil",
                                        "dunkerque",
                                        "poitiers",
                                        "asnieres-sur-seine",
                                        "versailles",
                                        "colombes",
                                        "aubervilliers",
                                        "aulnay-sous-bois",
                                        "courbevoie",
                                        "cherbourg",
                                        "rueil-malmaison",
                                        "pau",
                                        "champigny",
                                        "antibes",
                                        "la-rochelle",
                                        "saint-maur",
                                        "cannes",
                                        "calais",
                                        "beziers",
                                        "colmar",
                                        "bourges",
                                        "merignac",
                                        "ajaccio",
                                        "saint-nazaire",
                                        "drancy",
                                        "issy-les-moulineaux",
                                        "noisy-le-grand",
                                        "levallois",
                                        "quimper",
                                        "troyes",
                                        "la-seyne",
                                        "neuilly",
                                        "pessac",
                                        "valence",
                                        "chambery",
                                        "lorient",
                                        "niort",
                                        "sarcelles",
                                        "villejuif",
                                        "venissieux",
                                        "cergy",
                                        "hyeres",
                                        "beauvais",
                                        "vannes",
                                        "clichy",
                                        "la-roche-sur-yon",
                                        "evry",
                                        "epinay",
                                        "ivry",
                                        "laval",
                                        "meaux",
                                        "montauban",
                                        "belfort",
                                        "arles",
                                        "bayonne"};
constexpr std::string_view kServices[] = {
    "secretariat", "accueil",   "urgences",    "consultations", "bureau-entrees", "direction",
    "dim",         "pharmacie", "laboratoire", "radiologie",    "admissions",     "standard"};
constexpr std::string_view kSpecialties[] = {
    "cardiologie", "pediatrie", "oncologie",   "neurologie",  "chirurgie",    "maternite",
    "psychiatrie", "geriatrie", "pneumologie", "nephrologie", "dermatologie", "orl"};
constexpr std::string_view kSoftware[] = {
    "dxcare", "sillage", "easily", "crossway",        "orbis",  "medilab",   "kalisil",
    "osiris", "weda",    "maidis", "hopital-manager", "cerner", "mediboard", "hexagone"};
constexpr std::string_view kIssuers[] = {
    "CN=TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS,OU=IGC-SANTE TEST,O=ANS,C=FR",
    "CN=AC IGC-SANTE FORTE ORGANISATIONS,OU=IGC-SANTE,O=ANS,C=FR",
    "CN=AC IGC-SANTE ELEMENTAIRE ORGANISATIONS,OU=IGC-SANTE,O=ANS,C=FR",
    "CN=AC IGC-SANTE STANDARD ORGANISATIONS,OU=IGC-SANTE,O=ANS,C=FR"};

template <size_t N>
std::string_view pick(const std::string_view (&list)[N], std::mt19937_64& random) {
  return list[random() % N];
}

std::string hex(std::mt19937_64& random, size_t bytes, bool upper) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    auto b = static_cast<unsigned>(random() & 0xFF);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

class AddressMaker {
 public:
  explicit AddressMaker(uint64_t seed) : random_(seed) {}

  std::string establishment() {
    return std::string(pick(kEstablishments, random_)) + "-" + std::string(pick(kCities, random_)) +
           ".mssante.fr";
  }
  // A local part and a domain for a mailbox of this type.
  std::pair<std::string, std::string> next(MailboxType type) {
    auto s = [](std::string_view v) { return std::string(v); };
    switch (type) {
      case MailboxType::kPer: {
        std::string domain =
            random_() % 2 ? s(pick(kProfessions, random_)) + ".mssante.fr" : establishment();
        return {s(pick(kFirstNames, random_)) + "." + s(pick(kLastNames, random_)), domain};
      }
      case MailboxType::kOrg:
        return {s(pick(kServices, random_)) + "." + s(pick(kSpecialties, random_)),
                establishment()};
      case MailboxType::kApp:
        return {"app." + s(pick(kSoftware, random_)), establishment()};
      case MailboxType::kCab:
        return {"cabinet." + s(pick(kLastNames, random_)), establishment()};
    }
    return {"x", establishment()};
  }
  // The address, with a number appended when the name is taken in that domain.
  std::string unique(const std::pair<std::string, std::string>& parts) {
    std::string base = parts.first + "@" + parts.second;
    unsigned& uses = uses_[base];
    ++uses;
    if (uses == 1) return base;
    return parts.first + "." + std::to_string(uses) + "@" + parts.second;
  }
  std::mt19937_64& random() { return random_; }

 private:
  std::mt19937_64 random_;
  std::unordered_map<std::string, unsigned> uses_;
};

MailboxType next_type(std::mt19937_64& random) {
  unsigned r = random() % 100;
  return r < 70   ? MailboxType::kPer
         : r < 82 ? MailboxType::kOrg
         : r < 97 ? MailboxType::kApp
                  : MailboxType::kCab;
}

MailboxStatus next_status(std::mt19937_64& random) {
  unsigned r = random() % 100;
  return r < 96   ? MailboxStatus::kActive
         : r < 99 ? MailboxStatus::kSuspended
                  : MailboxStatus::kClosed;
}

void add_mailboxes(GeneratedDirectory& d, const DirectoryShape& shape, AddressMaker& maker,
                   std::vector<size_t> (&by_type)[4]) {
  std::unordered_set<std::string> domains;
  for (size_t i = 0; i < shape.mailboxes; ++i) {
    MailboxType type = next_type(maker.random());
    auto parts = maker.next(type);
    domains.insert(parts.second);
    d.mailboxes.push_back({maker.unique(parts), type, next_status(maker.random())});
    d.address_bytes += d.mailboxes.back().address.size();
    by_type[static_cast<int>(type)].push_back(i);
  }
  d.per = by_type[0].size(), d.org = by_type[1].size(), d.app = by_type[2].size();
  d.cab = by_type[3].size(), d.domains = domains.size();
}

void add_bindings(GeneratedDirectory& d, const DirectoryShape& shape, std::mt19937_64& random,
                  const std::vector<size_t>& apps) {
  for (size_t i = 0; i < shape.spki_bindings && !apps.empty(); ++i) {
    d.bindings.push_back({storage::CertificateMatch::kSpkiSha256, hex(random, 32, false),
                          d.mailboxes[apps[i % apps.size()]].address, ""});
  }
  for (size_t c = 0; c < shape.issuer_serial_certificates && !apps.empty(); ++c) {
    std::string key = std::string(kIssuers[c % 4]) + "|" + hex(random, 16, true);
    for (size_t j = 0; j < shape.mailboxes_per_issuer_serial_certificate; ++j) {
      d.bindings.push_back({storage::CertificateMatch::kIssuerSerial, key,
                            d.mailboxes[apps[random() % apps.size()]].address, ""});
    }
  }
}

void add_holders(GeneratedDirectory& d, const DirectoryShape& shape, std::mt19937_64& random,
                 const std::vector<size_t> (&by_type)[4]) {
  const auto& per = by_type[0];
  const auto& org = by_type[1];
  const auto& cab = by_type[3];
  for (size_t h = 0; h < shape.holders && !per.empty(); ++h) {
    std::string id = "8100" + std::to_string(10'000'000 + h);  // idNat: "8" + RPPS
    d.holders.push_back(id);
    d.attachments.push_back(
        {id, d.mailboxes[per[h % per.size()]].address, storage::HolderRole::kOwner});
  }
  auto attach = [&](size_t count, const std::vector<size_t>& mailboxes, storage::HolderRole role) {
    for (size_t i = 0; i < count && !mailboxes.empty() && !d.holders.empty(); ++i) {
      d.attachments.push_back({d.holders[random() % d.holders.size()],
                               d.mailboxes[mailboxes[random() % mailboxes.size()]].address, role});
    }
  };
  attach(shape.delegations, org, storage::HolderRole::kDelegate);
  attach(shape.co_holdings, cab, storage::HolderRole::kCoHolder);
}

void add_senders(GeneratedDirectory& d, const DirectoryShape& shape, std::mt19937_64& random,
                 const std::vector<size_t> (&by_type)[4]) {
  const auto& apps = by_type[2];
  // Two senders for each mailbox that has some.
  for (size_t i = 0; i < shape.senders && !apps.empty(); i += 2) {
    const std::string& mailbox = d.mailboxes[apps[random() % apps.size()]].address;
    std::string domain = mailbox.substr(mailbox.find('@'));
    d.senders.emplace_back(mailbox, "secretariat" + domain);
    if (i + 1 < shape.senders)
      d.senders.emplace_back(mailbox, "noreply." + std::to_string(i) + domain);
  }
}

}  // namespace

DirectoryShape shape_for(size_t mailboxes) {
  DirectoryShape shape;
  double factor = static_cast<double>(mailboxes) / static_cast<double>(shape.mailboxes);
  for (size_t* count : {&shape.spki_bindings, &shape.issuer_serial_certificates, &shape.holders,
                        &shape.delegations, &shape.co_holdings, &shape.senders}) {
    *count = std::max<size_t>(1, static_cast<size_t>(static_cast<double>(*count) * factor));
  }
  shape.mailboxes = mailboxes;
  return shape;
}

GeneratedDirectory generate_directory(const DirectoryShape& shape, uint64_t seed) {
  GeneratedDirectory d;
  AddressMaker maker(seed);
  std::vector<size_t> by_type[4];
  d.mailboxes.reserve(shape.mailboxes);
  add_mailboxes(d, shape, maker, by_type);
  add_bindings(d, shape, maker.random(), by_type[2]);
  add_holders(d, shape, maker.random(), by_type);
  add_senders(d, shape, maker.random(), by_type);
  return d;
}

namespace {

class Insert {
 public:
  Insert(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK)
      throw std::runtime_error(sqlite3_errmsg(db));
  }
  ~Insert() { sqlite3_finalize(stmt_); }
  template <class... Texts>
  void run(const Texts&... texts) {
    int index = 0;
    (sqlite3_bind_text(stmt_, ++index, std::string_view(texts).data(),
                       static_cast<int>(std::string_view(texts).size()), SQLITE_STATIC),
     ...);
    if (sqlite3_step(stmt_) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db_));
    sqlite3_reset(stmt_);
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(sqlite3* db, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK)
    throw std::runtime_error(sqlite3_errmsg(db));
}

}  // namespace

double import_directory(const GeneratedDirectory& d, const std::string& path) {
  storage::open_sqlite_directory(path).reset();  // the schema, as mssgatectl makes it
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("cannot open " + path);
  auto begin = std::chrono::steady_clock::now();
  exec(db, "PRAGMA synchronous = NORMAL; BEGIN");
  {
    Insert mailbox(db, "INSERT INTO mailbox VALUES (?1, ?2, ?3, 1767225600)");
    for (const auto& m : d.mailboxes)
      mailbox.run(m.address, protocol::to_string(m.type), protocol::to_string(m.status));
    Insert binding(db, "INSERT OR IGNORE INTO certificate_binding VALUES (?1, ?2, ?3, '')");
    for (const auto& b : d.bindings)
      binding.run(storage::to_string(b.match), b.value, b.mailbox);
    Insert holder(db, "INSERT INTO holder VALUES (?1, '')");
    for (const auto& h : d.holders)
      holder.run(h);
    Insert attachment(db, "INSERT OR IGNORE INTO mailbox_holder VALUES (?1, ?2, ?3)");
    for (const auto& a : d.attachments)
      attachment.run(a.mailbox, a.holder, storage::to_string(a.role));
    Insert sender(db, "INSERT OR IGNORE INTO mailbox_sender VALUES (?1, ?2)");
    for (const auto& [owner, address] : d.senders)
      sender.run(owner, address);
  }
  exec(db, "COMMIT");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_close(db);
  return seconds;
}

}  // namespace mssgate::bench
