//go:build !linux

package main

import "errors"

func useNetns(string) error { return errors.New("-netns needs Linux") }
