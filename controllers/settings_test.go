package controllers

import (
	"flag"
	"slices"
	"testing"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/components/api"
	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/components/verifier"
	"github.com/chatr-ai/chatr/internal/config"
)

// componentSettings are the CHATR_* settings component c reads: the ones
// its command registers (as chatrd does).
func componentSettings(c chatrv1.Component) []string {
	fs := flag.NewFlagSet(string(c), flag.ContinueOnError)
	switch c {
	case chatrv1.ComponentAPI:
		var cfg api.Config
		cfg.RegisterFlags(fs)
	case chatrv1.ComponentStreamer:
		var cfg streamer.Config
		streamer.RegisterFlags(fs, &cfg)
	case chatrv1.ComponentVerifier:
		var cfg verifier.Config
		verifier.RegisterFlags(fs, &cfg)
	}
	return config.Settings(fs)
}

// Both sides of the settings contract (settings.go), for every component:
// each ConfigMap key its pods reference is a setting it reads; each setting
// it reads is written from the room, set from a Secret or the downward API,
// or listed in notFromRoom with a reason; and the ConfigMap holds exactly
// the keys some component reads.
func TestSettingsContract(t *testing.T) {
	cm := buildConfigMap(defaultedRoom(nil))
	written := map[string]bool{}
	listedUsed := map[string]bool{}
	for _, c := range chatrv1.Components {
		reads := componentSettings(c)
		if len(reads) == 0 {
			t.Fatalf("%s registers no settings", c)
		}
		for _, k := range configKeys(c) {
			written[k] = true
			if !slices.Contains(reads, k) {
				t.Errorf("%s: the operator writes %s, which the component does not read", c, k)
			}
			if _, ok := cm.Data[k]; !ok {
				t.Errorf("%s: its pods reference %s, which the ConfigMap does not hold", c, k)
			}
		}
		for _, k := range podEnv(c) {
			if !slices.Contains(reads, k) {
				t.Errorf("%s: its pods get %s, which the component does not read", c, k)
			}
		}
		for _, k := range reads {
			listed := notFromRoomReason(c, k) != ""
			if _, ok := notFromRoom[string(c)+"/"+k]; ok {
				listedUsed[string(c)+"/"+k] = true
			} else if listed {
				listedUsed[k] = true
			}
			switch inCM, fromPod := slices.Contains(configKeys(c), k), slices.Contains(podEnv(c), k); {
			case listed && (inCM || fromPod):
				t.Errorf("%s: %s is written to its pods but also listed in notFromRoom", c, k)
			case !listed && !inCM && !fromPod:
				t.Errorf("%s reads %s, which the ChatRoom does not set: write it (configKeys) or list it in notFromRoom with the reason", c, k)
			}
		}
	}
	for k := range cm.Data {
		if !written[k] {
			t.Errorf("the ConfigMap holds %s, which no component's pods reference", k)
		}
	}
	for k, why := range notFromRoom {
		if why == "" {
			t.Errorf("notFromRoom[%s] gives no reason", k)
		}
		if !listedUsed[k] {
			t.Errorf("notFromRoom lists %s, which no component reads", k)
		}
	}
}
