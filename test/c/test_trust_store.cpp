// The trust store: a TLS verification failure names the CA file it was checked
// against, configured or found on the system, so a bundled libcurl that cannot
// find the system's CA bundle says so instead of failing anonymously.
#include <unistd.h>

#include <cstdio>

#include "helpers.h"

TEST(TrustStore, VerificationFailureNamesTheSystemCaFileUsed) {
  Lease lease("{\"base_url\":\"" + mock().https_base() + "/v1\",\"max_retries\":0}");
  Result r = get(lease.handle, "models");
  ASSERT_EQ(r.rc, ESP_ETLS) << r.error;
  const size_t at = r.error.find("(CA file: /");
  ASSERT_NE(at, std::string::npos) << r.error;
  // The file named is one that exists: the one verification really used.
  const std::string named = r.error.substr(at + 10, r.error.find(')', at) - at - 10);
  EXPECT_EQ(access(named.c_str(), R_OK), 0) << named;
}

TEST(TrustStore, VerificationFailureNamesTheConfiguredCaFile) {
  // A real CA bundle that did not sign the mock's certificate.
  char path[] = "/tmp/esp-other-ca-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string other_ca = path;
  {
    FILE *f = fdopen(fd, "w");
    ASSERT_NE(f, nullptr);
    FILE *system = fopen("/etc/ssl/certs/ca-certificates.crt", "r");
    if (system) {
      char buf[4096];
      size_t n;
      while ((n = fread(buf, 1, sizeof buf, system)) > 0) fwrite(buf, 1, n, f);
      fclose(system);
    }
    fclose(f);
  }
  Lease lease("{\"base_url\":\"" + mock().https_base() + "/v1\",\"max_retries\":0,\"ca_file\":\"" + other_ca +
              "\"}");
  Result r = get(lease.handle, "models");
  remove(other_ca.c_str());
  EXPECT_EQ(r.rc, ESP_ETLS) << r.error;
  EXPECT_NE(r.error.find("(CA file: " + other_ca + ")"), std::string::npos) << r.error;
}
