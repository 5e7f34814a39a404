// The http executor's address policy and text helpers as units.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "address_policy.h"
#include "http_text.h"

namespace {

using quern::http::AddressPolicy;
using quern::http::parse_cidr;

TEST(AddressPolicy, RefusesInternalRanges) {
  AddressPolicy p(false, {});
  for (const char* ip : {"0.0.0.0",
                         "0.1.2.3",
                         "10.0.0.1",
                         "10.255.255.255",
                         "100.64.0.1",
                         "127.0.0.1",
                         "127.1.2.3",
                         "169.254.169.254",
                         "169.254.1.1",
                         "172.16.0.1",
                         "172.31.255.255",
                         "192.168.1.1",
                         "192.0.0.170",
                         "198.18.0.1",
                         "224.0.0.1",
                         "239.255.255.250",
                         "255.255.255.255",
                         "::",
                         "::1",
                         "fc00::1",
                         "fd00:ec2::254",
                         "fe80::1",
                         "fec0::1",
                         "ff02::1",
                         "::ffff:127.0.0.1",
                         "::ffff:10.1.2.3",
                         "::ffff:169.254.169.254",
                         "::127.0.0.1",
                         "64:ff9b::a00:1",
                         "2002:a00:1::1"}) {
    EXPECT_FALSE(p.refusal(ip).empty()) << ip;
  }
  EXPECT_NE(p.refusal("169.254.169.254").find("metadata"), std::string::npos);
  EXPECT_NE(p.refusal("fd00:ec2::254").find("metadata"), std::string::npos);
  EXPECT_NE(p.refusal("::ffff:169.254.169.254").find("metadata"), std::string::npos);
}

TEST(AddressPolicy, AllowsPublicAddresses) {
  AddressPolicy p(false, {});
  for (const char* ip : {"1.1.1.1", "8.8.8.8", "172.32.0.1", "172.15.255.255", "192.169.0.1", "100.128.0.1",
                         "2001:4860:4860::8888", "::ffff:8.8.8.8", "2002:808:808::1"}) {
    EXPECT_EQ(p.refusal(ip), "") << ip;
  }
}

TEST(AddressPolicy, AllowedHostsAndAllowPrivate) {
  AddressPolicy p(false, {parse_cidr("127.0.0.1"), parse_cidr("10.1.0.0/16"), parse_cidr("fd12::/16")});
  EXPECT_EQ(p.refusal("127.0.0.1"), "");
  EXPECT_EQ(p.refusal("::ffff:127.0.0.1"), "");  // the same host over IPv6
  EXPECT_FALSE(p.refusal("127.0.0.2").empty());
  EXPECT_EQ(p.refusal("10.1.200.3"), "");
  EXPECT_FALSE(p.refusal("10.2.0.1").empty());
  EXPECT_EQ(p.refusal("fd12:3::1"), "");
  EXPECT_FALSE(p.refusal("fd13::1").empty());
  AddressPolicy open(true, {});
  EXPECT_EQ(open.refusal("169.254.169.254"), "");
}

TEST(AddressPolicy, ParseCidrRejectsJunk) {
  for (const char* bad : {"", "localhost", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "1.2.3.4.5"})
    EXPECT_THROW(parse_cidr(bad), std::invalid_argument) << bad;
}

TEST(HttpText, Utf8Base64AndJsonTypes) {
  EXPECT_TRUE(quern::http::is_valid_utf8("plain ünï 日本 🎉"));
  EXPECT_FALSE(quern::http::is_valid_utf8("\xff"));
  EXPECT_FALSE(quern::http::is_valid_utf8("\xc0\xaf"));      // overlong
  EXPECT_FALSE(quern::http::is_valid_utf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(quern::http::is_valid_utf8("\xe6\x97"));      // truncated
  EXPECT_EQ(quern::http::base64_encode(""), "");
  EXPECT_EQ(quern::http::base64_encode("f"), "Zg==");
  EXPECT_EQ(quern::http::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(quern::http::base64_encode("foo"), "Zm9v");
  EXPECT_TRUE(quern::http::is_json_content_type("application/json"));
  EXPECT_TRUE(quern::http::is_json_content_type("Application/JSON; charset=utf-8"));
  EXPECT_TRUE(quern::http::is_json_content_type("application/problem+json"));
  EXPECT_FALSE(quern::http::is_json_content_type("text/plain"));
  EXPECT_FALSE(quern::http::is_json_content_type("application/jsonp"));
}

}  // namespace
