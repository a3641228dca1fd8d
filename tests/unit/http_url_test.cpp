#include "protocol/http_url.hpp"

#include <gtest/gtest.h>

using mssgate::protocol::parse_http_url;

TEST(HttpUrl, ReadsSchemeHostPortAndTarget) {
  auto crl = parse_http_url("http://igc-sante.esante.gouv.fr/CRL/ACR-EL.crl");
  ASSERT_TRUE(crl);
  EXPECT_FALSE(crl->tls);
  EXPECT_EQ(crl->host, "igc-sante.esante.gouv.fr");
  EXPECT_EQ(crl->port, "80");
  EXPECT_EQ(crl->target, "/CRL/ACR-EL.crl");
  auto psc = parse_http_url("https://auth.esw.esante.gouv.fr:8443");
  ASSERT_TRUE(psc);
  EXPECT_TRUE(psc->tls);
  EXPECT_EQ(psc->port, "8443");
  EXPECT_EQ(psc->target, "/");
  auto v6 = parse_http_url("https://[::1]:8443/realms/x");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, "8443");
  EXPECT_EQ(v6->target, "/realms/x");
  EXPECT_EQ(parse_http_url("http://[::1]/")->port, "80");
}

TEST(HttpUrl, RefusesWhatIsNotAnHttpUrl) {
  for (const char* bad : {"ftp://x/y", "https://", "https://:443/x", "http://host:/x",
                          "https://[::1/x", "https://[::1]x/", "igc-sante.esante.gouv.fr/crl"}) {
    EXPECT_FALSE(parse_http_url(bad)) << bad;
  }
}
