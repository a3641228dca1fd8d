#include "config/config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "config/storage_settings.hpp"

using mssgate::config::ConfigError;
using mssgate::config::parse_config;
namespace fs = std::filesystem;

namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mssgate-config-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    for (const char* name : {"server.pem", "server.key", "ca.pem", "crls.pem"})
      std::ofstream(dir_ / name) << "x";
    std::ofstream(dir_ / "master.secret") << "s3cret\n";
    std::ofstream(dir_ / "empty.secret") << "\nsecond line\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path() const { return (dir_ / "mssgate.toml").string(); }

  static std::string minimal() {
    return R"([tls]
certificate_chain = "server.pem"
private_key = "server.key"
client_ca = "ca.pem"
crl_files = ["crls.pem"]

[imap]
starttls_listen = ["127.0.0.1:1143"]

[imap.backend]
address = "127.0.0.1:11143"
master_user = "mssgate"
master_password_file = "master.secret"

[directory]
sqlite_path = "directory.db"
)";
  }

  // The error text for `text`, or "" when it is accepted.
  std::string error_for(const std::string& text) {
    try {
      parse_config(text, path());
      return "";
    } catch (const ConfigError& e) {
      return e.what();
    }
  }

  fs::path dir_;
};

}  // namespace

TEST_F(ConfigTest, AcceptsAMinimalFileWithReferentielDefaults) {
  auto config = parse_config(minimal(), path());
  EXPECT_EQ(config.tls.min_version, "TLSv1.2");
  EXPECT_EQ(config.tls.max_version, "TLSv1.2");
  EXPECT_EQ(config.tls.ciphers,
            "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-SHA384:ECDHE-"
            "RSA-AES128-SHA256");
  EXPECT_EQ(config.imap.backend.master_password, "s3cret");
  EXPECT_EQ(config.imap.starttls_listen.at(0).port, 1143);
  // Relative paths are anchored at the file's directory.
  EXPECT_EQ(config.directory.sqlite_path, (dir_ / "directory.db").string());
  EXPECT_EQ(config.directory.refresh_interval, std::chrono::seconds(1));
  EXPECT_EQ(config.imap.idle_timeout, std::chrono::minutes(30));
}

TEST_F(ConfigTest, ReadsDurationsSizesAndIpv6Endpoints) {
  auto config = parse_config(minimal() + R"(
[server]
io_threads = 3
)" + "",
                             path());
  EXPECT_EQ(config.server.io_threads, 3u);
  std::string text = minimal();
  text.replace(text.find("[imap]\n"), 7,
               "[imap]\nmax_literal_bytes = \"1MiB\"\nlogin_timeout = \"90s\"\nidle_timeout = "
               "\"2h\"\ntls_listen = [\"[::1]:1993\"]\n");
  config = parse_config(text, path());
  EXPECT_EQ(config.imap.max_literal_bytes, 1u << 20);
  EXPECT_EQ(config.imap.login_timeout, std::chrono::seconds(90));
  EXPECT_EQ(config.imap.idle_timeout, std::chrono::hours(2));
  EXPECT_EQ(config.imap.tls_listen.at(0).host, "::1");
  EXPECT_EQ(config.imap.tls_listen.at(0).text(), "[::1]:1993");
  config = parse_config(minimal() + "refresh_interval = \"100ms\"\n", path());
  EXPECT_EQ(config.directory.refresh_interval, std::chrono::milliseconds(100));
}

TEST_F(ConfigTest, RefusesUnknownKeysWithFileLineAndKey) {
  std::string text = minimal() + "\n[imap.backend2]\nx = 1\n";
  EXPECT_NE(error_for(text).find(path() + ":18:7: imap.backend2: unknown key"), std::string::npos)
      << error_for(text);
  std::string typo = minimal();
  typo.replace(typo.find("private_key"), 11, "privat_key");
  std::string error = error_for(typo);
  EXPECT_NE(error.find(path() + ":3:1: tls.privat_key: unknown key"), std::string::npos) << error;
  EXPECT_NE(error.find("tls.private_key: is required"), std::string::npos) << error;
}

TEST_F(ConfigTest, RefusesBadValuesWithFileLineAndKey) {
  struct Case {
    std::string from, to, expected;
  };
  for (const auto& c : std::vector<Case>{
           {"address = \"127.0.0.1:11143\"", "address = \"127.0.0.1\"",
            ":11:11: imap.backend.address: must be"},
           {"address = \"127.0.0.1:11143\"", "address = \"127.0.0.1:99999\"",
            "imap.backend.address: must be"},
           {"[imap]\n", "[imap]\nmax_line_bytes = 12\n",
            ":8:18: imap.max_line_bytes: must be between 1024"},
           {"[imap]\n", "[imap]\nlogin_timeout = 30\n", "imap.login_timeout: must be a duration"},
           {"[imap]\n", "[imap]\nidle_timeout = \"10 minutes\"\n",
            "imap.idle_timeout: must be a duration"},
           {"[tls]\n", "[tls]\nmax_version = \"TLSv1.1\"\n",
            "tls.max_version: must be \"TLSv1.2\" or \"TLSv1.3\""},
           {"[tls]\n", "[tls]\nmin_version = \"TLSv1.3\"\n",
            "tls.max_version: must not be lower than tls.min_version"},
           {"crl_files = [\"crls.pem\"]", "crl_files = []",
            "tls.crl_files: is required when tls.client_ca is set"},
           {"crl_files = [\"crls.pem\"]", "crl_files = [\"missing.pem\"]",
            "missing.pem: No such file or directory"},
           {"crl_files = [\"crls.pem\"]", "crl_files = [\".\"]",
            "tls.crl_files: cannot read " + dir_.string() + "/: is a directory"},
           {"master.secret", "nothing.secret", "nothing.secret: No such file or directory"},
           {"master.secret", "empty.secret", "empty.secret: its first line is empty"},
           {"starttls_listen = [\"127.0.0.1:1143\"]", "starttls_listen = []",
            "at least one of imap.starttls_listen"},
           {"[imap]\n", "[imap]\nmax_bad_commands = true\n",
            "imap.max_bad_commands: must be an integer"},
           {"sqlite_path = \"directory.db\"",
            "sqlite_path = \"directory.db\"\nrefresh_interval = \"5ms\"",
            "directory.refresh_interval: must be between 10ms and 3600000ms"},
       }) {
    std::string text = minimal();
    ASSERT_NE(text.find(c.from), std::string::npos) << c.from;
    text.replace(text.find(c.from), c.from.size(), c.to);
    std::string error = error_for(text);
    EXPECT_NE(error.find(c.expected), std::string::npos)
        << "expected \"" << c.expected << "\" in:\n"
        << error;
  }
}

TEST_F(ConfigTest, ReadsTheOrganisationAttributes) {
  EXPECT_EQ(parse_config(minimal(), path()).auth.organisation_attributes,
            (std::vector<std::string>{"OU", "CN"}));
  auto config = parse_config(
      minimal() + "[auth]\norganisation_attributes = [\"organizationIdentifier\", \"CN\"]\n",
      path());
  EXPECT_EQ(config.auth.organisation_attributes,
            (std::vector<std::string>{"organizationIdentifier", "CN"}));
  EXPECT_NE(error_for(minimal() + "[auth]\norganisation_attributes = [\"OU\", \"cn\"]\n")
                .find("auth.organisation_attributes: unknown subject attribute \"cn\""),
            std::string::npos);
  EXPECT_NE(error_for(minimal() + "[auth]\norganisation_attributes = [\"OU\", \"OU\"]\n")
                .find("auth.organisation_attributes: \"OU\" is named twice"),
            std::string::npos);
}

TEST_F(ConfigTest, ReadsTheSubmissionSection) {
  auto config = parse_config(minimal() + R"(
[smtp]
starttls_listen = ["127.0.0.1:1587"]
max_message_bytes = "20MiB"
data_timeout = "90s"

[smtp.backend]
address = "127.0.0.1:10587"
)",
                             path());
  EXPECT_EQ(config.smtp.starttls_listen.at(0).port, 1587);
  EXPECT_EQ(config.smtp.max_message_bytes, 20u << 20);
  EXPECT_EQ(config.smtp.data_timeout, std::chrono::seconds(90));
  EXPECT_EQ(config.smtp.command_timeout, std::chrono::minutes(5));
  EXPECT_EQ(config.smtp.backend.address.port, 10587);
  EXPECT_TRUE(config.smtp.allow_null_sender);
  std::string error = error_for(minimal() + "[smtp]\nmax_line_bytes = 100\nhostname = \"a b\"\n");
  EXPECT_NE(error.find("smtp.max_line_bytes: must be between 512"), std::string::npos) << error;
  EXPECT_NE(error.find("smtp.hostname: must be a host name"), std::string::npos) << error;
}

TEST_F(ConfigTest, ReadsProSanteConnectAndDerivesItsEndpoints) {
  EXPECT_FALSE(parse_config(minimal(), path()).psc.enabled());
  std::ofstream(dir_ / "psc.secret") << "client-secret\n";
  auto config = parse_config(minimal() + R"(
[psc]
issuer = "https://auth.test/auth/realms/esante-wallet"
client_id = "mssgate"
client_secret_file = "psc.secret"
)",
                             path());
  ASSERT_TRUE(config.psc.enabled());
  EXPECT_EQ(config.psc.mode, "introspection");
  EXPECT_EQ(config.psc.introspection_url,
            "https://auth.test/auth/realms/esante-wallet/protocol/openid-connect/token/introspect");
  EXPECT_EQ(config.psc.jwks_url,
            "https://auth.test/auth/realms/esante-wallet/protocol/openid-connect/certs");
  EXPECT_EQ(config.psc.client_secret, "client-secret");
  EXPECT_EQ(config.psc.subject_claim, "SubjectNameID");
  std::string error = error_for(minimal() + R"(
[psc]
mode = "magic"
issuer = "http://auth.test"
client_certificate = "server.pem"
)");
  EXPECT_NE(error.find("psc.mode: must be \"introspection\" or \"jwt\""), std::string::npos)
      << error;
  EXPECT_NE(error.find("psc.issuer: must be an https:// URL"), std::string::npos) << error;
  EXPECT_NE(error.find("psc.client_key: client_certificate and client_key go together"),
            std::string::npos)
      << error;
  error = error_for(minimal() + "[psc]\nissuer = \"https://a.test\"\n");
  EXPECT_NE(error.find("psc.client_id: is required for introspection"), std::string::npos) << error;
}

TEST_F(ConfigTest, ReadsTheTokenPolicyAndTheIssuerBudget) {
  std::ofstream(dir_ / "psc.secret") << "client-secret\n";
  const std::string psc = R"(
[psc]
issuer = "https://auth.test/auth/realms/esante-wallet"
client_id = "mssgate"
client_secret_file = "psc.secret"
)";
  auto defaults = parse_config(minimal() + psc, path()).psc;
  EXPECT_TRUE(defaults.allowed_clients.empty());
  EXPECT_EQ(defaults.token_types, std::vector<std::string>{"Bearer"});
  EXPECT_EQ(defaults.token_format, "jwt");
  EXPECT_EQ(defaults.max_token_bytes, 8192u);
  EXPECT_EQ(defaults.issuer_max_in_flight, 32u);
  EXPECT_EQ(defaults.issuer_max_per_second, 50u);
  EXPECT_EQ(defaults.issuer_burst, 100u);
  auto config = parse_config(minimal() + psc + R"(
allowed_clients = ["lps-a", "lps-b"]
required_audience = "mssante-api"
required_scope = "mss"
accepted_acr = ["eidas2"]
accepted_amr = ["card", "otp"]
token_types = []
token_format = "opaque"
max_token_bytes = "4KiB"
issuer_max_in_flight = 4
issuer_max_per_second = 2
issuer_burst = 10
)",
                             path());
  EXPECT_EQ(config.psc.allowed_clients, (std::vector<std::string>{"lps-a", "lps-b"}));
  EXPECT_EQ(config.psc.required_audience, "mssante-api");
  EXPECT_EQ(config.psc.required_scope, "mss");
  EXPECT_EQ(config.psc.accepted_acr, std::vector<std::string>{"eidas2"});
  EXPECT_EQ(config.psc.accepted_amr, (std::vector<std::string>{"card", "otp"}));
  EXPECT_TRUE(config.psc.token_types.empty());
  EXPECT_EQ(config.psc.token_format, "opaque");
  EXPECT_EQ(config.psc.max_token_bytes, 4096u);
  EXPECT_EQ(config.psc.issuer_max_in_flight, 4u);
  EXPECT_EQ(config.psc.issuer_max_per_second, 2u);
  EXPECT_EQ(config.psc.issuer_burst, 10u);

  std::string error = error_for(minimal() + psc + R"(
allowed_clients = "lps-a"
required_scope = "openid mss"
token_format = "paseto"
max_token_bytes = 100
issuer_max_in_flight = 0
issuer_max_per_second = 0
issuer_burst = 0
)");
  for (const char* expected : {"psc.allowed_clients: must be an array of strings",
                               "psc.required_scope: must be one scope (no space)",
                               "psc.token_format: must be \"jwt\" or \"opaque\"",
                               "psc.max_token_bytes: must be between 256 and 16384 bytes",
                               "psc.issuer_max_in_flight: must be between 1 and 10000",
                               "psc.issuer_max_per_second: must be between 1 and 100000",
                               "psc.issuer_burst: must be between 1 and 1000000"}) {
    EXPECT_NE(error.find(expected), std::string::npos) << expected << "\n" << error;
  }
  error = error_for(minimal() + psc + "allowed_clients = [\"\"]\nmode = \"jwt\"\n" +
                    "token_format = \"opaque\"\n");
  EXPECT_NE(error.find("psc.allowed_clients: an empty client id is not allowed"), std::string::npos)
      << error;
  EXPECT_NE(error.find("psc.token_format: must be \"jwt\" when psc.mode is \"jwt\""),
            std::string::npos)
      << error;
}

TEST_F(ConfigTest, WarnsWhenNoClientOrAnyClientIsAllowed) {
  std::ofstream(dir_ / "psc.secret") << "client-secret\n";
  const std::string psc = R"(
[psc]
issuer = "https://auth.test/auth/realms/esante-wallet"
client_id = "mssgate"
client_secret_file = "psc.secret"
)";
  EXPECT_TRUE(mssgate::config::config_warnings(parse_config(minimal(), path())).empty())
      << "no Pro Sante Connect, nothing to say";
  auto none = mssgate::config::config_warnings(parse_config(minimal() + psc, path()));
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0].key, "psc.allowed_clients");
  EXPECT_NE(none[0].text.find("every Pro Sante Connect token will be refused"), std::string::npos);
  auto any = mssgate::config::config_warnings(
      parse_config(minimal() + psc + "allowed_clients = [\"lps-a\", \"*\"]\n", path()));
  ASSERT_EQ(any.size(), 1u);
  EXPECT_NE(any[0].text.find("any PSC client is accepted"), std::string::npos);
  EXPECT_TRUE(mssgate::config::config_warnings(
                  parse_config(minimal() + psc + "allowed_clients = [\"lps-a\"]\n", path()))
                  .empty());
}

TEST_F(ConfigTest, ReportsTomlSyntaxErrorsWithTheirPosition) {
  std::string error = error_for("[tls\ncertificate_chain = 1\n");
  EXPECT_EQ(error.rfind(path() + ":1:", 0), 0u) << error;
}

TEST_F(ConfigTest, TheExampleConfigurationIsValid) {
  // The example names files of a real installation; check it parses with only those problems.
  std::ifstream in(std::string(MSSGATE_SOURCE_DIR) + "/config/mssgate.example.toml");
  ASSERT_TRUE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  std::string error = error_for(text.str());
  std::stringstream lines(error);
  std::string line;
  while (std::getline(lines, line)) {
    EXPECT_NE(line.find("cannot read"), std::string::npos)
        << "unexpected problem in the example: " << line;
  }
}

TEST_F(ConfigTest, IndicatorsAndLmtpTap) {
  auto off = parse_config(minimal(), path());
  EXPECT_FALSE(off.indicators.enabled());
  EXPECT_TRUE(off.lmtp.listen.empty());
  auto config = parse_config(minimal() + R"(
[lmtp]
listen = ["127.0.0.1:10024"]
backend = "127.0.0.1:11024"
[indicators]
journal = "indicators.db"
log = "indicators.jsonl"
operator_domains = ["Hopital.MSSante.fr"]
days = "utc"
max_archive_bytes = "16MiB"
[indicators.export]
messages_file = "Messages_{month}.{format}"
messages_columns = ["mailbox", "sent", "sent_qualified_ins"]
csv_separator = ","
)",
                             path());
  EXPECT_TRUE(config.indicators.enabled());
  EXPECT_EQ(config.indicators.journal, (dir_ / "indicators.db").string());
  EXPECT_EQ(config.indicators.operator_domains, std::vector<std::string>{"hopital.mssante.fr"});
  EXPECT_EQ(config.indicators.patient_domains, std::vector<std::string>{"patient.mssante.fr"});
  EXPECT_TRUE(config.indicators.utc_days);
  EXPECT_EQ(config.indicators.max_archive_bytes, size_t{16} << 20);
  EXPECT_EQ(config.indicators.exports.messages_columns.size(), 3u);
  EXPECT_EQ(config.lmtp.listen.at(0).port, 10024);
  EXPECT_EQ(config.lmtp.backend.port, 11024);
  EXPECT_EQ(config.lmtp.delivery_id_header, "X-Mssgate-Delivery-Id");
  EXPECT_EQ(parse_config(minimal() + "[lmtp]\ndelivery_id_header = \"\"\n", path())
                .lmtp.delivery_id_header,
            "");
  EXPECT_EQ(parse_config(minimal() + "[lmtp]\ndelivery_id_header = \"X-Op-Id\"\n", path())
                .lmtp.delivery_id_header,
            "X-Op-Id");
  EXPECT_FALSE(config.lmtp.serial_per_mailbox);
  EXPECT_TRUE(parse_config(minimal() + "[lmtp]\nserial_per_mailbox = true\n", path())
                  .lmtp.serial_per_mailbox);
  auto lone =
      error_for(minimal() + "[lmtp]\nserial_per_mailbox = true\ndelivery_id_header = \"\"\n");
  EXPECT_NE(lone.find("lmtp.serial_per_mailbox: is for Dovecot's de-duplication"),
            std::string::npos)
      << lone;
  for (const char* bad : {"X-Id: 1", "X Id", "-X", "X_Id\\r"}) {
    auto refused = error_for(minimal() + "[lmtp]\ndelivery_id_header = \"" + bad + "\"\n");
    EXPECT_NE(refused.find("lmtp.delivery_id_header"), std::string::npos) << bad << refused;
    EXPECT_NE(refused.find("is not a header field name"), std::string::npos) << refused;
  }

  auto error = error_for(minimal() + R"(
[indicators]
journal = "i.db"
days = "paris"
[indicators.export]
documents_columns = ["mailbox", "ins_value"]
csv_separator = ";;"
connections_file = "../escape.csv"
)");
  EXPECT_NE(error.find("indicators.days"), std::string::npos) << error;
  EXPECT_NE(error.find("unknown column \"ins_value\""), std::string::npos) << error;
  EXPECT_NE(error.find("csv_separator"), std::string::npos) << error;
  EXPECT_NE(error.find("plain names"), std::string::npos) << error;
}

TEST_F(ConfigTest, TheBudgetOfAMessage) {
  auto defaults = parse_config(minimal(), path());
  EXPECT_EQ(defaults.indicators.max_message_inflated_bytes, size_t{128} << 20);
  EXPECT_EQ(defaults.indicators.max_message_xml_documents, 500u);
  EXPECT_EQ(defaults.indicators.max_message_xml_nodes, 1000000u);
  auto config = parse_config(minimal() + R"(
[indicators]
journal = "i.db"
max_message_inflated_bytes = "1GiB"
max_message_xml_documents = 50
max_message_xml_nodes = 2000
)",
                             path());
  EXPECT_EQ(config.indicators.max_message_inflated_bytes, size_t{1} << 30);
  EXPECT_EQ(config.indicators.max_message_xml_documents, 50u);
  EXPECT_EQ(config.indicators.max_message_xml_nodes, 2000u);

  std::string error = error_for(minimal() + R"(
[indicators]
journal = "i.db"
max_message_inflated_bytes = 512
max_message_xml_documents = 0
max_message_xml_nodes = "many"
)");
  for (const char* key : {"indicators.max_message_inflated_bytes: must be between",
                          "indicators.max_message_xml_documents: must be between",
                          "indicators.max_message_xml_nodes: must be an integer"}) {
    EXPECT_NE(error.find(key), std::string::npos) << key << " in:\n" << error;
  }
}

TEST_F(ConfigTest, TheInspectionThreadsTheirQueueTimeAndMemory) {
  auto defaults = parse_config(minimal(), path());
  EXPECT_EQ(defaults.indicators.inspection_threads, 0u);
  EXPECT_EQ(defaults.indicators.inspection_queue_bytes, size_t{1} << 20);
  EXPECT_EQ(defaults.indicators.inspection_memory, size_t{256} << 20);
  EXPECT_EQ(defaults.indicators.max_message_cpu_time, std::chrono::seconds(2));
  auto config = parse_config(minimal() + R"(
[indicators]
journal = "i.db"
inspection_threads = 3
inspection_queue_bytes = "256KiB"
inspection_memory = "1GiB"
max_message_cpu_time = "500ms"
)",
                             path());
  EXPECT_EQ(config.indicators.inspection_threads, 3u);
  EXPECT_EQ(config.indicators.inspection_queue_bytes, size_t{256} << 10);
  EXPECT_EQ(config.indicators.inspection_memory, size_t{1} << 30);
  EXPECT_EQ(config.indicators.max_message_cpu_time, std::chrono::milliseconds(500));

  std::string error = error_for(minimal() + R"(
[indicators]
journal = "i.db"
inspection_threads = -1
inspection_queue_bytes = "1KiB"
inspection_memory = "40MiB"
max_message_cpu_time = "forever"
)");
  for (const char* key : {"indicators.inspection_threads: must be between",
                          "indicators.inspection_queue_bytes: must be between",
                          "indicators.inspection_memory: must be at least twice max_archive_bytes",
                          "indicators.max_message_cpu_time: must be a duration"}) {
    EXPECT_NE(error.find(key), std::string::npos) << key << " in:\n" << error;
  }
  // The threads and the memory they share are made once, at start.
  auto running = parse_config(minimal() + "[indicators]\njournal = \"i.db\"\n", path());
  auto changed = mssgate::config::keep_restart_only_settings(running, config);
  EXPECT_EQ(changed, (std::vector<std::string>{"indicators.inspection_threads",
                                               "indicators.inspection_memory"}));
  EXPECT_EQ(config.indicators.inspection_threads, 0u);
  EXPECT_EQ(config.indicators.inspection_queue_bytes, size_t{256} << 10);  // reloadable
}

TEST_F(ConfigTest, TheIoStallTimeoutOfTheWatchdog) {
  EXPECT_EQ(parse_config(minimal(), path()).server.io_stall_timeout, std::chrono::seconds(10));
  auto config = parse_config(minimal() + "[server]\nio_stall_timeout = \"3s\"\n", path());
  EXPECT_EQ(config.server.io_stall_timeout, std::chrono::seconds(3));
  std::string error = error_for(minimal() + "[server]\nio_stall_timeout = \"10ms\"\n");
  EXPECT_NE(error.find("server.io_stall_timeout: must be between 100ms and"), std::string::npos)
      << error;
}

TEST_F(ConfigTest, FreedMemoryGoesBackUnlessTurnedOff) {
  EXPECT_TRUE(parse_config(minimal(), path()).server.return_freed_memory);
  auto off = parse_config(minimal() + "[server]\nreturn_freed_memory = false\n", path());
  EXPECT_FALSE(off.server.return_freed_memory);
  std::string error = error_for(minimal() + "[server]\nreturn_freed_memory = \"no\"\n");
  EXPECT_NE(error.find("server.return_freed_memory"), std::string::npos) << error;
  auto changed = mssgate::config::keep_restart_only_settings(parse_config(minimal(), path()), off);
  EXPECT_EQ(changed, std::vector<std::string>{"server.return_freed_memory"});
  EXPECT_TRUE(off.server.return_freed_memory) << "the running value, until a restart";
}

TEST_F(ConfigTest, TheLmtpTapHearsOnlyLoopbackOrTheAllowedPeers) {
  auto loopback =
      parse_config(minimal() + "[lmtp]\nlisten = [\"127.0.0.1:10024\", \"[::1]:10024\"]\n", path());
  EXPECT_TRUE(loopback.lmtp.allowed_peers.empty());
  auto peer = [](const char* text) { return *mssgate::protocol::parse_ip_address(text); };
  EXPECT_TRUE(loopback.lmtp.peer_allowed(peer("127.0.0.1")));
  EXPECT_TRUE(loopback.lmtp.peer_allowed(peer("::1")));
  EXPECT_FALSE(loopback.lmtp.peer_allowed(peer("192.0.2.25")));

  std::string open = error_for(minimal() + "[lmtp]\nlisten = [\"0.0.0.0:10024\"]\n");
  EXPECT_NE(open.find("lmtp.listen: 0.0.0.0:10024 is not a loopback address: set "
                      "lmtp.allowed_peers"),
            std::string::npos)
      << open;
  EXPECT_NE(error_for(minimal() + "[lmtp]\nlisten = [\"[::]:24\"]\n").find("lmtp.listen"),
            std::string::npos);

  auto allowed = parse_config(minimal() +
                                  "[lmtp]\nlisten = [\"192.0.2.1:10024\"]\n"
                                  "allowed_peers = [\"192.0.2.25\", \"198.51.100.0/24\", "
                                  "\"2001:db8::/64\"]\n",
                              path());
  ASSERT_EQ(allowed.lmtp.allowed_peers.size(), 3u);
  EXPECT_TRUE(allowed.lmtp.peer_allowed(peer("192.0.2.25")));
  EXPECT_TRUE(allowed.lmtp.peer_allowed(peer("::ffff:198.51.100.9")));
  EXPECT_TRUE(allowed.lmtp.peer_allowed(peer("2001:db8::25")));
  EXPECT_FALSE(allowed.lmtp.peer_allowed(peer("192.0.2.26")));
  // Named peers replace loopback: a local process is not Postfix unless listed.
  EXPECT_FALSE(allowed.lmtp.peer_allowed(peer("127.0.0.1")));

  std::string bad = error_for(minimal() +
                              "[lmtp]\nlisten = [\"192.0.2.1:10024\"]\n"
                              "allowed_peers = [\"postfix.example.fr\", \"10.0.0.0/33\"]\n");
  EXPECT_NE(bad.find("lmtp.allowed_peers: \"postfix.example.fr\" is not an IP address or network"),
            std::string::npos)
      << bad;
  EXPECT_NE(bad.find("\"10.0.0.0/33\" is not an IP address"), std::string::npos) << bad;
  EXPECT_EQ(bad.find("is not a loopback address"), std::string::npos) << bad;
}

TEST_F(ConfigTest, ClientCertificatesNeedTheClientAuthUsageUnlessToldOtherwise) {
  EXPECT_TRUE(parse_config(minimal(), path()).tls.require_client_auth_eku);
  std::string text = minimal();
  text.replace(text.find("[imap]\n"), 7, "require_client_auth_eku = false\n\n[imap]\n");
  EXPECT_FALSE(parse_config(text, path()).tls.require_client_auth_eku);
  text = minimal();
  text.replace(text.find("[imap]\n"), 7, "require_client_auth_eku = \"yes\"\n\n[imap]\n");
  EXPECT_NE(error_for(text).find("tls.require_client_auth_eku: must be true or false"),
            std::string::npos);
}

TEST_F(ConfigTest, AdminEndpointIsLoopbackUnlessTlsWithClientCertificates) {
  auto config = parse_config(
      minimal() + "\n[admin]\nlisten = [\"127.0.0.1:9925\", \"[::1]:9925\"]\n", path());
  EXPECT_EQ(config.admin.listen.size(), 2u);
  EXPECT_FALSE(config.admin.tls());

  std::string open = error_for(minimal() + "\n[admin]\nlisten = [\"0.0.0.0:9925\"]\n");
  EXPECT_NE(open.find("admin.listen: 0.0.0.0:9925 is not a loopback address"), std::string::npos)
      << open;

  std::string half = error_for(minimal() +
                               "\n[admin]\nlisten = [\"10.0.0.1:9925\"]\n"
                               "certificate_chain = \"server.pem\"\n");
  EXPECT_NE(half.find("admin.private_key: is required for TLS"), std::string::npos) << half;
  EXPECT_NE(half.find("admin.client_ca: is required for TLS"), std::string::npos) << half;

  config = parse_config(minimal() +
                            "\n[admin]\nlisten = [\"10.0.0.1:9925\"]\n"
                            "certificate_chain = \"server.pem\"\nprivate_key = "
                            "\"server.key\"\nclient_ca = \"ca.pem\"\n",
                        path());
  EXPECT_TRUE(config.admin.tls());
  EXPECT_TRUE(config.admin.provisioning_writers.empty());
  EXPECT_EQ(config.admin.max_import_bytes, size_t{256} << 20);

  // The provisioning API's writers: certificate keys, lower-cased, over TLS only.
  std::string tls_admin =
      "\n[admin]\nlisten = [\"10.0.0.1:9925\"]\ncertificate_chain = \"server.pem\"\n"
      "private_key = \"server.key\"\nclient_ca = \"ca.pem\"\n";
  config = parse_config(minimal() + tls_admin + "provisioning_writers = [\"" +
                            std::string(64, 'A') + "\"]\nmax_import_bytes = \"1GiB\"\n",
                        path());
  EXPECT_EQ(config.admin.provisioning_writers, std::vector<std::string>{std::string(64, 'a')});
  EXPECT_EQ(config.admin.max_import_bytes, size_t{1} << 30);
  std::string not_a_key =
      error_for(minimal() + tls_admin + "provisioning_writers = [\"CN=provisioning\"]\n");
  EXPECT_NE(not_a_key.find("admin.provisioning_writers: 'CN=provisioning' is not a certificate's "
                           "spki-sha256"),
            std::string::npos)
      << not_a_key;
  std::string plain = error_for(minimal() + "\n[admin]\nlisten = [\"127.0.0.1:9925\"]\n" +
                                "provisioning_writers = [\"" + std::string(64, 'a') + "\"]\n");
  EXPECT_NE(plain.find("admin.provisioning_writers: names client certificates, so it needs TLS"),
            std::string::npos)
      << plain;
  std::string tiny = error_for(minimal() + tls_admin + "max_import_bytes = 10\n");
  EXPECT_NE(tiny.find("admin.max_import_bytes: must be between 1024"), std::string::npos) << tiny;
}

TEST_F(ConfigTest, AutoconfigNeedsHostsAndAListener) {
  std::string error = error_for(minimal() + "\n[admin.autoconfig]\ndomains = [\"Example.FR\"]\n");
  EXPECT_NE(error.find("admin.autoconfig.imap_host: is required with domains"), std::string::npos)
      << error;
  EXPECT_NE(error.find("admin.autoconfig: needs admin.listen"), std::string::npos) << error;
  auto config = parse_config(minimal() +
                                 "\n[admin]\nlisten = [\"127.0.0.1:9925\"]\n[admin.autoconfig]\n"
                                 "domains = [\"Example.FR\"]\nimap_host = \"imap.example.fr\"\n"
                                 "smtp_host = \"smtp.example.fr\"\nsmtp_port = 465\n",
                             path());
  EXPECT_EQ(config.admin.autoconfig.domains.at(0), "example.fr");
  EXPECT_EQ(config.admin.autoconfig.smtp_port, 465);
  EXPECT_EQ(config.admin.autoconfig.imap_port, 143);
}

TEST_F(ConfigTest, CrlUrlsNeedACacheDirectoryAndHttp) {
  std::string text = minimal();
  text.replace(text.find("crl_files = [\"crls.pem\"]"), 24,
               "crl_urls = [\"http://crl.example.fr/ac.crl\", \"ftp://x/y.crl\"]");
  std::string error = error_for(text);
  EXPECT_NE(error.find("tls.crl_cache_dir: is required when tls.crl_urls is set"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("\"ftp://x/y.crl\" must be an http:// or https:// URL"), std::string::npos)
      << error;
  text = minimal();
  text.replace(text.find("crl_files = [\"crls.pem\"]"), 24,
               "crl_urls = [\"http://crl.example.fr/ac.crl\"]\ncrl_cache_dir = \"crl\"\n"
               "crl_refresh_interval = \"30m\"");
  // URLs alone satisfy the CRL requirement of a client CA.
  auto config = parse_config(text, path());
  EXPECT_EQ(config.tls.crl_cache_dir, (dir_ / "crl").string());
  EXPECT_EQ(config.tls.crl_refresh_interval, std::chrono::minutes(30));
  EXPECT_EQ(config.tls.crl_download_timeout, std::chrono::seconds(30));
  const std::string interval = "crl_refresh_interval = \"30m\"";
  text.insert(text.find(interval) + interval.size(), "\ncrl_download_timeout = \"5s\"");
  EXPECT_EQ(parse_config(text, path()).tls.crl_download_timeout, std::chrono::seconds(5));
  text.replace(text.find("\"5s\""), 4, "\"1h\"");
  error = error_for(text);
  EXPECT_NE(error.find("tls.crl_download_timeout: must be between 1000ms and 600000ms"),
            std::string::npos)
      << error;
}

TEST_F(ConfigTest, TlsSessionCacheKeys) {
  auto config = parse_config(minimal(), path());
  EXPECT_EQ(config.tls.session_cache_size, 10000u);
  EXPECT_EQ(config.tls.session_lifetime, std::chrono::minutes(5));
  std::string text = minimal();
  const std::string files = "crl_files = [\"crls.pem\"]";
  text.insert(text.find(files) + files.size(),
              "\nsession_cache_size = 0\nsession_lifetime = \"2h\"");
  config = parse_config(text, path());
  EXPECT_EQ(config.tls.session_cache_size, 0u);
  EXPECT_EQ(config.tls.session_lifetime, std::chrono::hours(2));
  text.replace(text.find("session_cache_size = 0"), 22, "session_cache_size = -1");
  text.replace(text.find("\"2h\""), 4, "\"25h\"");
  std::string error = error_for(text);
  EXPECT_NE(error.find("tls.session_cache_size: must be between 0 and 10000000"), std::string::npos)
      << error;
  EXPECT_NE(error.find("tls.session_lifetime: must be between"), std::string::npos) << error;
}

TEST_F(ConfigTest, LoggingKeys) {
  auto config = parse_config(minimal() +
                                 "\n[server]\nlog_file = \"logs/mssgate.log\"\naudit_log = "
                                 "\"logs/audit.log\"\nlog_repeat_limit = 5\n"
                                 "log_repeat_window = \"30s\"\n",
                             path());
  EXPECT_EQ(config.server.log_file, (dir_ / "logs/mssgate.log").string());
  EXPECT_EQ(config.server.audit_log, (dir_ / "logs/audit.log").string());
  EXPECT_EQ(config.server.log_repeat_limit, 5u);
  EXPECT_EQ(config.server.log_repeat_window, std::chrono::seconds(30));
  std::string same =
      error_for(minimal() + "\n[server]\nlog_file = \"a.log\"\naudit_log = \"a.log\"\n");
  EXPECT_NE(same.find("server.audit_log: must not be the same file"), std::string::npos) << same;
}

TEST_F(ConfigTest, ReloadKeepsRestartOnlySettingsAndNamesThem) {
  auto running = parse_config(minimal(), path());
  std::string text = minimal();
  const std::string listen = "starttls_listen = [\"127.0.0.1:1143\"]";
  text.replace(text.find(listen), listen.size(),
               "starttls_listen = [\"127.0.0.1:2143\"]\nmax_bad_commands = 3");
  auto next = parse_config(
      text + "\n[server]\nio_threads = 7\nlog_level = \"warn\"\nio_stall_timeout = \"1s\"\n",
      path());
  auto changed = mssgate::config::keep_restart_only_settings(running, next);
  EXPECT_EQ(changed, (std::vector<std::string>{"server.io_threads", "server.io_stall_timeout",
                                               "imap.starttls_listen"}));
  EXPECT_EQ(next.imap.starttls_listen.at(0).port, 1143);  // the running value
  EXPECT_EQ(next.server.io_threads, running.server.io_threads);
  EXPECT_EQ(next.imap.max_bad_commands, 3u);  // reloadable: the new value
  EXPECT_EQ(next.server.log_level, "warn");
  EXPECT_EQ(parse_config(text + "\n[server]\nlog_level = \"warning\"\n", path()).server.log_level,
            "warn")
      << "the word the log lines use";
  auto same = parse_config(minimal(), path());
  EXPECT_TRUE(mssgate::config::keep_restart_only_settings(running, same).empty());
}

TEST_F(ConfigTest, ClientLimitsAndTheirChecks) {
  auto defaults = parse_config(minimal(), path());
  EXPECT_EQ(defaults.limits.max_connections_per_address, 100u);
  EXPECT_EQ(defaults.limits.connection_rate_per_address, 300u);
  EXPECT_EQ(defaults.limits.failed_sign_in_rate_per_address, 30u);
  EXPECT_EQ(defaults.limits.pre_auth_timeout, std::chrono::seconds(60));
  EXPECT_EQ(defaults.lmtp.max_connections, 500u);
  auto config = parse_config(minimal() + R"(
[limits]
max_connections_per_address = 5
rate_time_unit = "10s"
failure_delay = "250ms"
max_failure_delay = "2s"
pre_auth_timeout = "20s"
max_pre_auth_commands = 12
max_sessions_per_certificate = 7
exempt_networks = ["192.0.2.0/24", "2001:db8:1::/48", "198.51.100.7"]

[lmtp]
max_connections = 40
)",
                             path());
  const auto& l = config.limits;
  EXPECT_EQ(l.max_connections_per_address, 5u);
  EXPECT_EQ(l.rate_time_unit, std::chrono::seconds(10));
  EXPECT_EQ(l.failure_delay, std::chrono::milliseconds(250));
  EXPECT_EQ(l.max_pre_auth_commands, 12u);
  EXPECT_EQ(l.max_sessions_per_certificate, 7u);
  EXPECT_EQ(config.lmtp.max_connections, 40u);
  ASSERT_EQ(l.exempt_networks.size(), 3u);
  EXPECT_EQ(l.exempt_networks[0].text(), "192.0.2.0/24");
  EXPECT_EQ(l.exempt_networks[1].text(), "2001:db8:1::/48");
  EXPECT_EQ(l.exempt_networks[2].text(), "198.51.100.7/32");
  std::array<uint8_t, 16> address{192, 0, 2, 77};
  EXPECT_TRUE(l.exempt(false, address));
  address[2] = 3;
  EXPECT_FALSE(l.exempt(false, address));
  std::array<uint8_t, 16> v6{0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0xff, 0xff,
                             1,    2,    3,    4,    5,    6,    7,    8};
  EXPECT_TRUE(l.exempt(true, v6));
  v6[5] = 2;
  EXPECT_FALSE(l.exempt(true, v6));
  EXPECT_FALSE(l.exempt(false, {198, 51, 100, 8}));
  EXPECT_TRUE(l.exempt(false, {198, 51, 100, 7}));

  for (const auto& [text, expected] : std::vector<std::pair<std::string, std::string>>{
           {"exempt_networks = [\"192.0.2.0/33\"]",
            "limits.exempt_networks: \"192.0.2.0/33\" is not"},
           {"exempt_networks = [\"example.fr\"]", "limits.exempt_networks: \"example.fr\" is not"},
           {"max_connections_per_address = 0", "limits.max_connections_per_address: must be"},
           {"failure_delay = \"5s\"\nmax_failure_delay = \"1s\"",
            "limits.max_failure_delay: must not be shorter than limits.failure_delay"},
           {"pre_auth_timeout = \"0s\"", "limits.pre_auth_timeout: must be between"},
           {"tracked_addresses = 10", "limits.tracked_addresses: must be between"},
           {"max_connection_per_address = 3", "limits.max_connection_per_address: unknown key"},
       }) {
    std::string error = error_for(minimal() + "\n[limits]\n" + text + "\n");
    EXPECT_NE(error.find(expected), std::string::npos) << "expected \"" << expected << "\" in:\n"
                                                       << error;
  }
}

TEST_F(ConfigTest, ProxyProtocolNamesItsListenersAndTheBalancers) {
  auto none = parse_config(minimal(), path());
  EXPECT_TRUE(none.proxy_protocol.listeners.empty());
  EXPECT_FALSE(none.proxy_protocol.expected_on("imap"));

  auto config = parse_config(minimal() + R"(
[proxy_protocol]
listeners = ["imaps", "submissions", "admin"]
trusted_sources = ["192.0.2.10", "2001:db8::/64"]
header_timeout = "2s"
max_header_bytes = 256
)",
                             path());
  const auto& proxy = config.proxy_protocol;
  EXPECT_TRUE(proxy.expected_on("imaps"));
  EXPECT_TRUE(proxy.expected_on("admin"));
  EXPECT_FALSE(proxy.expected_on("imap"));
  EXPECT_FALSE(proxy.expected_on("lmtp"));
  EXPECT_EQ(proxy.header_timeout, std::chrono::seconds(2));
  EXPECT_EQ(proxy.max_header_bytes, 256u);
  EXPECT_TRUE(proxy.trusted(*mssgate::protocol::parse_ip_address("192.0.2.10")));
  EXPECT_TRUE(proxy.trusted(*mssgate::protocol::parse_ip_address("::ffff:192.0.2.10")));
  EXPECT_FALSE(proxy.trusted(*mssgate::protocol::parse_ip_address("192.0.2.11")));
  EXPECT_TRUE(proxy.trusted(*mssgate::protocol::parse_ip_address("2001:db8::7")));
  EXPECT_FALSE(proxy.trusted(*mssgate::protocol::parse_ip_address("2001:db8:0:1::7")));
}

TEST_F(ConfigTest, ProxyProtocolRefusesUnknownListenersAndMissingBalancers) {
  std::string unknown = error_for(minimal() + R"(
[proxy_protocol]
listeners = ["imap", "pop3"]
trusted_sources = ["127.0.0.1"]
)");
  EXPECT_NE(unknown.find("proxy_protocol.listeners: unknown listener \"pop3\" (known: imap, imaps, "
                         "submission, submissions, lmtp, admin)"),
            std::string::npos)
      << unknown;
  std::string no_sources = error_for(minimal() + R"(
[proxy_protocol]
listeners = ["imap"]
)");
  EXPECT_NE(no_sources.find("proxy_protocol.trusted_sources: is required with "
                            "proxy_protocol.listeners"),
            std::string::npos)
      << no_sources;
  std::string bad_source = error_for(minimal() + R"(
[proxy_protocol]
listeners = ["imap"]
trusted_sources = ["haproxy.example.fr"]
)");
  EXPECT_NE(bad_source.find("proxy_protocol.trusted_sources: \"haproxy.example.fr\" is not an IP "
                            "address or network"),
            std::string::npos)
      << bad_source;
  std::string short_timeout = error_for(minimal() + R"(
[proxy_protocol]
header_timeout = "10ms"
)");
  EXPECT_NE(short_timeout.find("proxy_protocol.header_timeout"), std::string::npos)
      << short_timeout;
}

TEST_F(ConfigTest, StorageIsSqliteUnlessPostgresqlIsNamed) {
  auto sqlite = parse_config(minimal(), path());
  EXPECT_FALSE(sqlite.storage.postgresql_enabled());
  std::ofstream(dir_ / "pg.secret") << "s3cret-pg\n";
  // With PostgreSQL, directory.sqlite_path is not needed.
  std::string without_sqlite = minimal();
  without_sqlite.replace(without_sqlite.find("sqlite_path = \"directory.db\""),
                         std::string("sqlite_path = \"directory.db\"").size(), "");
  std::string storage = R"(
[storage]
backend = "postgresql"
postgresql = "host=10.0.0.7 dbname=mssgate user=mssgate"
password_file = "pg.secret"
connect_timeout = "2s"
)";
  auto pg = parse_config("[server]\ninstance = \"gw-1\"\n" + without_sqlite + storage, path());
  EXPECT_TRUE(pg.storage.postgresql_enabled());
  EXPECT_EQ(pg.storage.postgresql, "host=10.0.0.7 dbname=mssgate user=mssgate");
  EXPECT_EQ(pg.storage.password, "s3cret-pg");
  EXPECT_EQ(pg.storage.connect_timeout, std::chrono::seconds(2));
  EXPECT_EQ(pg.storage.statement_timeout, std::chrono::seconds(10));
  auto quick = parse_config(
      "[server]\ninstance = \"gw-1\"\n" + without_sqlite + storage + "statement_timeout = \"3s\"\n",
      path());
  EXPECT_EQ(quick.storage.statement_timeout, std::chrono::seconds(3));
  EXPECT_EQ(mssgate::config::postgresql_settings(quick.storage, "t").statement_timeout,
            std::chrono::seconds(3));
  EXPECT_NE(error_for(without_sqlite).find("directory.sqlite_path: is required"),
            std::string::npos);
  // The indicator journal is PostgreSQL's too, on unless switched off; its rows name the gateway.
  EXPECT_TRUE(pg.indicators.in_postgresql);
  EXPECT_TRUE(pg.indicators.enabled());
  EXPECT_TRUE(pg.indicators.journal.empty());
  std::string nameless = error_for(without_sqlite + storage);
  EXPECT_NE(nameless.find("server.instance: is required with the indicator journal in PostgreSQL"),
            std::string::npos)
      << nameless;
  auto off = parse_config(without_sqlite + storage + "[indicators]\nenabled = false\n", path());
  EXPECT_FALSE(off.indicators.enabled());
  std::string both = error_for("[server]\ninstance = \"gw-1\"\n" + without_sqlite + storage +
                               "[indicators]\njournal = \"indicators.db\"\n");
  EXPECT_NE(both.find("indicators.journal: is not used with [storage] backend = \"postgresql\": "
                      "the journal is in PostgreSQL (mssgatectl storage migrate --journal "
                      "sqlite:PATH moves this one there)"),
            std::string::npos)
      << both;
}

TEST_F(ConfigTest, TheSqliteJournalIsOnWhereNamed) {
  EXPECT_FALSE(parse_config(minimal(), path()).indicators.enabled());
  auto named = parse_config(minimal() + "[indicators]\njournal = \"indicators.db\"\n", path());
  EXPECT_TRUE(named.indicators.enabled());
  EXPECT_FALSE(named.indicators.in_postgresql);
  auto off = parse_config(
      minimal() + "[indicators]\njournal = \"indicators.db\"\nenabled = false\n", path());
  EXPECT_FALSE(off.indicators.enabled());
  std::string missing = error_for(minimal() + "[indicators]\nenabled = true\n");
  EXPECT_NE(missing.find("indicators.journal: is required with indicators.enabled = true"),
            std::string::npos)
      << missing;
}

TEST_F(ConfigTest, StorageRefusesWhatItCannotUse) {
  std::string unknown = error_for(minimal() + "[storage]\nbackend = \"mysql\"\n");
  EXPECT_NE(unknown.find("storage.backend: must be \"sqlite\" or \"postgresql\""),
            std::string::npos)
      << unknown;
  std::string no_string = error_for(minimal() + "[storage]\nbackend = \"postgresql\"\n");
  EXPECT_NE(no_string.find("storage.postgresql: is required with backend = \"postgresql\""),
            std::string::npos)
      << no_string;
  std::string with_password =
      error_for(minimal() +
                "[storage]\nbackend = \"postgresql\"\npostgresql = \"host=h user=u password=p\"\n");
  EXPECT_NE(with_password.find("storage.postgresql: must not hold the password: put it in "
                               "storage.password_file"),
            std::string::npos)
      << with_password;
  EXPECT_EQ(with_password.find("password=p"), std::string::npos) << with_password;
  std::string no_file = error_for(minimal() +
                                  "[storage]\nbackend = \"postgresql\"\npostgresql = \"host=h\"\n"
                                  "password_file = \"missing.secret\"\n");
  EXPECT_NE(no_file.find("storage.password_file: cannot read a password from"), std::string::npos)
      << no_file;
}
