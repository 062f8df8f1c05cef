// The Go binding's module. Its root is the repository's so that src/ and
// include/ are inside it: the package in bindings/go compiles libesp from them
// (see packaging/go-sources.sh), with no second copy of the sources.
module github.com/libesp/libesp

go 1.24
