// Package sdktest runs the official OpenAI Go SDK (openai-go) on libesp
// through esp.Client.Transport. It is a module of its own, holding only
// tests, so that the binding's module stays free of dependencies.
package sdktest
