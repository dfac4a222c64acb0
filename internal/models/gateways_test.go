package models

import (
	"strings"
	"testing"
)

func TestParseGatewayConfiguration(t *testing.T) {
	c, err := ParseGatewayConfiguration([]byte(`{"type":"gateway","name":"gw","backend":"aws","region":"us-east-1","domain":"*.Example.COM"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.PublicIP || c.Certificate == nil || c.Certificate.Type != "lets-encrypt" || *c.Domain != "example.com" || c.ACMARN() != "" {
		t.Fatalf("defaults: %+v %+v", c, c.Certificate)
	}
	c, err = ParseGatewayConfiguration([]byte(`{"type":"gateway","backend":"aws","region":"us-east-1","certificate":{"type":"acm","arn":"arn:aws:acm:us-east-1:1:certificate/x"},"public_ip":false}`))
	if err != nil || c.ACMARN() != "arn:aws:acm:us-east-1:1:certificate/x" || c.PublicIP {
		t.Fatalf("acm: %+v %v", c, err)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"type":"gateway","backend":"lambda","region":"x"}`, "backend: \"lambda\" cannot host gateways"},
		{`{"type":"gateway","backend":"azure","region":"eastus","public_ip":false}`, "public_ip: azure gateways must have a public IP"},
		{`{"type":"gateway","backend":"gcp"}`, "region: required"},
		{`{"type":"gateway","backend":"gcp","region":"r","domain":"not a domain"}`, "domain: "},
		{`{"type":"gateway","backend":"gcp","region":"r","certificate":{"type":"acm","arn":"arn:x"}}`, "acm certificates work only with the aws backend"},
		{`{"type":"gateway","backend":"aws","region":"r","certificate":{"type":"acm"}}`, "certificate.arn: required"},
		{`{"type":"gateway","backend":"aws","region":"r","certificate":{"type":"self"}}`, "certificate.type: \"self\""},
		{`{"type":"gateway","backend":"aws","region":"r","replicas":2}`, "replicas:"},
		{`{"type":"gateway","backend":"aws","region":"r","colour":"red"}`, "colour: unknown field"},
		{`{"type":"gateway","backend":"aws","region":"r","name":"Bad_Name"}`, "name: \"Bad_Name\" is not valid"},
	} {
		_, err := ParseGatewayConfiguration([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.in, err, tc.want)
		}
	}
}
