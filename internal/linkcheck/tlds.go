package linkcheck

import "strings"

// knownTLDs are the top-level domains that make a bare dotted name a link on
// their own. Curated for what links in chat actually use (generic TLDs, the
// big country codes, link shorteners, the formerly free spam TLDs). Country
// codes that are everyday file extensions are left out on purpose (md sh rs
// py pl pm cc so ps mk ac am tf ml and the gTLDs zip and mov): see the
// package comment.
var knownTLDs = set(`
com net org info biz xyz online site website top club shop store app dev io ai co me tv ly gg
link click live life world today news blog tech space fun icu vip pro mobi name asia tel travel
jobs cloud page email media network social group company center win bid loan date download
stream review trade party science cam monster buzz rest best lol wtf fyi gov edu mil int wiki
chat bot gay sex porn xxx adult casino bet poker game games money finance ninja rocks guru
agency digital solutions services studio design art tools zone land city support systems software
codes foundation institute academy school exchange market markets capital fund ventures onion
crypto eth
uk de fr ru cn jp br au ca us eu nl es it in ua kz pk ng za mx ar tw hk kr vn id ir il tr gr pt
cz sk hu ro bg hr si at ch be dk se no fi ie is lt lv ee nz sg my ph cl pe ve ec uy eg sa ae qa
ke lk bd np li lu mt cy by su ms ws fm im gl la nu to cx tk ga cf gq vc cm do sc
`)

// fileExtensions are alphabetic suffixes that, followed by "/", are almost
// always prose about code ("Node.js/Deno", "config.yaml/json") rather than a
// domain with a path. None of them is a real top-level domain, so the
// exemption opens no hole: a real TLD followed by a path ("evil.sh/x") is
// always a link.
var fileExtensions = set(`
js ts jsx tsx mjs cjs txt go rb cpp hpp json yaml yml toml html htm css xml csv log pdf png jpg
jpeg gif svg tar gz exe dll java kt swift php sql lua ini cfg conf env lock mod sum bat vue
svelte ipynb wasm proto
`)

func set(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}
