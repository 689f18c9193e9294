// Package faulttest is servicekit's fault suite.
package faulttest
