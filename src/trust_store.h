// Where TLS peer verification finds its CA certificates when a client sets no
// ca_file: a libcurl bundled into a wheel or addon built on another system may
// have a compiled-in CA path that does not exist here.
#pragma once

#include <string>

namespace esp {

// The CA bundle to give CURLOPT_CAINFO for a client with no ca_file: nullptr
// keeps libcurl's compiled-in default (it exists), else SSL_CERT_FILE or the
// first system bundle found. Probed once per process.
const char *default_ca_file();

// " (CA file: <path>)" naming the bundle a TLS failure was verified against,
// or the paths probed when none was found: appended to TLS error messages.
std::string trust_store_note(const std::string &configured_ca_file);

}  // namespace esp
