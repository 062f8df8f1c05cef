//go:build esp_system

package esp

// With -tags esp_system the package links an installed libesp.so.0, found
// through pkg-config (esp.pc), instead of compiling the module's sources: the
// program then shares one libesp, one pool, with every other language in it.

/*
#cgo pkg-config: esp
*/
import "C"
