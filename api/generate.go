// Package api holds line's HTTP API: openapi.yaml is the source of truth;
// api.gen.go (models, echo ServerInterface, client and the embedded spec
// returned by GetSwagger) is generated from it with oapi-codegen.
package api

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config oapi-codegen.yaml openapi.yaml
