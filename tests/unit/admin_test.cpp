// The admin endpoint's documents, the metrics' OpenMetrics text, the log's repeat keys.
#include <gtest/gtest.h>

#include "daemon/services/admin_documents.hpp"
#include "daemon/telemetry/event_log.hpp"
#include "daemon/telemetry/metrics.hpp"

using namespace mssgate::daemon;

TEST(QueryParameter, DecodesPercentAndPlusAndFindsTheRightName) {
  EXPECT_EQ(query_parameter("/mail/config-v1.1.xml?emailaddress=dr.martin%40ex.fr", "emailaddress"),
            "dr.martin@ex.fr");
  EXPECT_EQ(query_parameter("/x?a=1&emailaddress=b+c%2Bd&z", "emailaddress"), "b c+d");
  EXPECT_EQ(query_parameter("/x?emailaddressx=1", "emailaddress"), "");
  EXPECT_EQ(query_parameter("/x", "emailaddress"), "");
  EXPECT_EQ(query_parameter("/x?emailaddress=%4", "emailaddress"), "%4");  // kept as sent
}

TEST(AdminRoute, ThePathAloneDecidesForGetAndHead) {
  EXPECT_EQ(admin_route("GET", "/metrics"), AdminRoute::kMetrics);
  EXPECT_EQ(admin_route("HEAD", "/metrics?x=1"), AdminRoute::kMetrics);
  EXPECT_EQ(admin_route("GET", "/healthz"), AdminRoute::kHealth);
  EXPECT_EQ(admin_route("GET", "/readyz"), AdminRoute::kReady);
  EXPECT_EQ(admin_route("GET", "/mail/config-v1.1.xml?emailaddress=a%40b.fr"),
            AdminRoute::kAutoconfig);
  EXPECT_EQ(admin_route("GET", "/.well-known/autoconfig/mail/config-v1.1.xml"),
            AdminRoute::kAutoconfig);
  EXPECT_EQ(admin_route("GET", "/metrics/"), AdminRoute::kNotFound);
  EXPECT_EQ(admin_route("GET", "/healthz#x"), AdminRoute::kNotFound);
  EXPECT_EQ(admin_route("GET", ""), AdminRoute::kNotFound);
  EXPECT_EQ(admin_route("POST", "/metrics"), AdminRoute::kMethodNotAllowed);
  EXPECT_EQ(admin_route("get", "/metrics"), AdminRoute::kMethodNotAllowed);
}

TEST(ExpectHeader, OnlyOneHundredContinueAsksForTheInterimAnswer) {
  EXPECT_TRUE(expects_continue("100-continue"));
  EXPECT_TRUE(expects_continue("100-Continue"));
  EXPECT_TRUE(expects_continue(" 100-CONTINUE\t"));
  EXPECT_FALSE(expects_continue(""));
  EXPECT_FALSE(expects_continue("100-continued"));
  EXPECT_FALSE(expects_continue("200-continue"));
  EXPECT_FALSE(expects_continue("100 continue"));
}

TEST(Autoconfig, AdvertisesStartTlsAndOAuth2ForServedDomainsOnly) {
  mssgate::config::AutoconfigConfig autoconfig;
  autoconfig.domains = {"ex.fr"};
  autoconfig.display_name = "Opérateur <test> & co";
  autoconfig.imap_host = "imap.ex.fr";
  autoconfig.smtp_host = "smtp.ex.fr";
  auto ok = autoconfig_document(autoconfig, "Dr.Martin@EX.FR");
  EXPECT_EQ(ok.status, 200u);
  EXPECT_NE(ok.body.find("<domain>ex.fr</domain>"), std::string::npos);
  EXPECT_NE(ok.body.find("<incomingServer type=\"imap\">\n      <hostname>imap.ex.fr</hostname>\n"
                         "      <port>143</port>\n      <socketType>STARTTLS</socketType>"),
            std::string::npos)
      << ok.body;
  EXPECT_NE(ok.body.find("<outgoingServer type=\"smtp\">\n      <hostname>smtp.ex.fr</hostname>\n"
                         "      <port>587</port>"),
            std::string::npos);
  EXPECT_NE(ok.body.find("<authentication>OAuth2</authentication>"), std::string::npos);
  EXPECT_NE(ok.body.find("Opérateur &lt;test&gt; &amp; co"), std::string::npos);
  EXPECT_EQ(autoconfig_document(autoconfig, "someone@other.fr").status, 404u);
  EXPECT_EQ(autoconfig_document(autoconfig, "").status, 400u);
  EXPECT_EQ(autoconfig_document(autoconfig, "no-at-sign").status, 400u);
  EXPECT_EQ(autoconfig_document(autoconfig, "a@ex.fr<script>").status, 400u);
}

TEST(Readiness, ReadyOnlyWhenEveryCheckPasses) {
  auto ready = readiness_document({{"serving", true, ""}, {"imap_backend", true, "127.0.0.1:143"}});
  EXPECT_EQ(ready.status, 200u);
  EXPECT_EQ(ready.body, "ready\nserving ok\nimap_backend ok 127.0.0.1:143\n");
  auto not_ready = readiness_document(
      {{"serving", true, ""}, {"imap_backend", false, "127.0.0.1:143 unreachable"}});
  EXPECT_EQ(not_ready.status, 503u);
  EXPECT_EQ(not_ready.body,
            "not ready\nserving ok\nimap_backend failed 127.0.0.1:143 unreachable\n");
}

TEST(Metrics, RendersCountersGaugesAndHistogramsAsOpenMetrics) {
  metrics::CounterFamily counter("test_requests", "Requests.", metrics::Type::kCounter, {"path"});
  counter.with({"/a\"b"}).inc(3);
  metrics::GaugeFamily gauge("test_open", "Open.", metrics::Type::kGauge, {});
  gauge.with().add(2);
  gauge.with().add(-0.5);
  metrics::HistogramFamily histogram("test_seconds", "Durations.", metrics::Type::kHistogram,
                                     {"kind"}, {0.1, 1});
  auto& h = histogram.with({"x"});
  h.observe(0.05);
  h.observe(0.1);  // on a bound: counted in that bucket (le)
  h.observe(5);
  std::string text;
  counter.render(text);
  gauge.render(text);
  histogram.render(text);
  EXPECT_EQ(text,
            "# TYPE test_requests counter\n# HELP test_requests Requests.\n"
            "test_requests_total{path=\"/a\\\"b\"} 3\n"
            "# TYPE test_open gauge\n# HELP test_open Open.\ntest_open 1.5\n"
            "# TYPE test_seconds histogram\n# HELP test_seconds Durations.\n"
            "test_seconds_bucket{kind=\"x\",le=\"0.1\"} 2\n"
            "test_seconds_bucket{kind=\"x\",le=\"1\"} 2\n"
            "test_seconds_bucket{kind=\"x\",le=\"+Inf\"} 3\n"
            "test_seconds_count{kind=\"x\"} 3\n"
            "test_seconds_sum{kind=\"x\"} 5.15\n");
}

TEST(Metrics, AnInstanceLabelComesFirstOnEverySample) {
  metrics::CounterFamily counter("test_events", "Events.", metrics::Type::kCounter, {"kind"});
  counter.with({"a"}).inc();
  metrics::GaugeFamily gauge("test_level", "Level.", metrics::Type::kGauge, {});
  gauge.with().set(1);
  metrics::HistogramFamily histogram("test_wait", "Waits.", metrics::Type::kHistogram, {}, {1});
  histogram.with().observe(0.5);
  std::string text;
  counter.render(text, "gw-2");
  gauge.render(text, "gw-2");
  histogram.render(text, "gw-\"2");
  EXPECT_NE(text.find("test_events_total{instance=\"gw-2\",kind=\"a\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("test_level{instance=\"gw-2\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("test_wait_bucket{instance=\"gw-\\\"2\",le=\"1\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("test_wait_count{instance=\"gw-\\\"2\"} 1\n"), std::string::npos) << text;
}

TEST(Metrics, TheGatewaysTextEndsWithEof) {
  std::string text = metrics::gateway().render_openmetrics();
  EXPECT_TRUE(text.ends_with("# EOF\n"));
  EXPECT_NE(text.find("# TYPE mssgate_connections counter\n"), std::string::npos);
}

TEST(EventLine, EveryValueIsWrittenAsValidUtf8WhateverAPeerSent) {
  using mssgate::daemon::Event;
  // Valid UTF-8 stays as it is, unquoted when it has no blank.
  EXPECT_EQ(Event("x").add("name", "Hôpital").text(), "event=x name=Hôpital");
  EXPECT_EQ(Event("x").add("name", "é 😀").text(), "event=x name=\"é 😀\"");
  // A byte of a Postfix reply altered on its way, a stray continuation byte, an overlong form,
  // a surrogate, a sequence cut short: quoted, each such byte written as \xNN.
  EXPECT_EQ(Event("x").add("queue_id", std::string("ED11\xcdX")).text(),
            "event=x queue_id=\"ED11\\xcdX\"");
  EXPECT_EQ(Event("x")
                .add("v", std::string("a\x80"
                                      "b"))
                .text(),
            "event=x v=\"a\\x80b\"");
  EXPECT_EQ(Event("x").add("v", std::string("\xc0\xaf")).text(), "event=x v=\"\\xc0\\xaf\"");
  EXPECT_EQ(Event("x").add("v", std::string("\xed\xa0\x80")).text(),
            "event=x v=\"\\xed\\xa0\\x80\"");
  EXPECT_EQ(Event("x").add("v", std::string("\xe2\x82")).text(), "event=x v=\"\\xe2\\x82\"");
  EXPECT_EQ(Event("x").add("v", std::string("\xf4\x90\x80\x80")).text(),
            "event=x v=\"\\xf4\\x90\\x80\\x80\"");
  // Valid and invalid together: the valid character kept whole.
  EXPECT_EQ(Event("x").add("v", std::string("é\xff")).text(), "event=x v=\"é\\xff\"");
}

TEST(EventRepeatKey, KeepsTheFieldsThatTellRepeatsApart) {
  EXPECT_EQ(event_repeat_key("event=tls_failed session=3f2a peer=127.0.0.1:4000 reason=timeout"),
            "reason=timeout");
  EXPECT_EQ(event_repeat_key("event=backend session=1 result=failed step=connect "
                             "detail=\"Connection refused\" duration_ms=12"),
            "result=failed step=connect detail=\"Connection refused\"");
  // Quoted values with spaces, escaped quotes and '=' stay whole.
  EXPECT_EQ(event_repeat_key("event=x a=\"b \\\" c=d\" peer=p e=-1 f=g"), "a=\"b \\\" c=d\" f=g");
  EXPECT_EQ(event_repeat_key("event=x"), "");
  std::string long_value(500, 'v');
  EXPECT_EQ(event_repeat_key("event=x detail=" + long_value).size(), 7 + 200u);
}
