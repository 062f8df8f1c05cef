// The system trust store, found at run time: libcurl's compiled-in CA bundle
// when it exists, else SSL_CERT_FILE, else the paths distributions use (the
// ones pycurl users and Go's crypto/x509 probe). One place for every binding.
#include "trust_store.h"

#include <curl/curl.h>
#include <unistd.h>

#include <cstdlib>

namespace esp {
namespace {

const char *const kSystemBundles[] = {
    "/etc/ssl/certs/ca-certificates.crt",                 // Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",                   // Fedora, RHEL
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  // CentOS, RHEL 7+
    "/etc/ssl/ca-bundle.pem",                             // openSUSE
    "/etc/pki/tls/cacert.pem",                            // OpenELEC
    "/etc/ssl/cert.pem",                                  // Alpine, macOS
};

bool readable(const char *path) { return path && *path && access(path, R_OK) == 0; }

const char *compiled_in_ca_file() {
  const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
  return info ? info->cainfo : nullptr;
}

struct Probe {
  const char *override_path = nullptr;  // what CURLOPT_CAINFO gets; nullptr: libcurl's default
  std::string in_effect;                // the bundle verification uses, "" when none was found
  std::string tried;                    // every path looked at, for the error message
};

Probe probe() {
  Probe p;
  auto look = [&p](const char *path) {
    if (!path || !*path) return false;
    p.tried += (p.tried.empty() ? "" : ", ") + std::string(path);
    return readable(path);
  };
  const char *env = std::getenv("SSL_CERT_FILE");
  if (look(env)) {
    p.override_path = env;
  } else if (look(compiled_in_ca_file())) {
    p.in_effect = compiled_in_ca_file();
    return p;
  } else {
    for (const char *path : kSystemBundles)
      if (look(path)) {
        p.override_path = path;
        break;
      }
  }
  if (p.override_path) p.in_effect = p.override_path;
  return p;
}

const Probe &probed() {
  static const Probe p = probe();  // thread-safe, once per process
  return p;
}

}  // namespace

const char *default_ca_file() { return probed().override_path; }

std::string trust_store_note(const std::string &configured_ca_file) {
  if (!configured_ca_file.empty()) return " (CA file: " + configured_ca_file + ")";
  const Probe &p = probed();
  if (!p.in_effect.empty()) return " (CA file: " + p.in_effect + ")";
  return " (no CA file found; tried: " + (p.tried.empty() ? std::string("none") : p.tried) +
         "; set ca_file or SSL_CERT_FILE)";
}

}  // namespace esp
