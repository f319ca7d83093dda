package moltbook

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// Profile is what verification needs of a Moltbook agent.
type Profile struct {
	// Name is the agent's name as Moltbook spells it.
	Name string
	// Claimed: a human owner has claimed (verified) the account.
	Claimed bool
	// OwnerXHandle is the owner's X/Twitter handle, "" when Moltbook gives none.
	OwnerXHandle string
	// Posts are the agent's recent posts, newest first. Never comments.
	Posts []Post
}

// Post is one of the agent's recent posts.
type Post struct {
	ID, Title, Content, Submolt, CreatedAt string
}

// FindCode returns the first recent post whose content or title contains
// "[code]", brackets included.
func (p *Profile) FindCode(code string) (Post, bool) {
	if code == "" {
		return Post{}, false
	}
	token := "[" + code + "]"
	for _, post := range p.Posts {
		if strings.Contains(post.Content, token) || strings.Contains(post.Title, token) {
			return post, true
		}
	}
	return Post{}, false
}

// The wire shapes. Fields are raw where the live service has been seen to
// vary, and decoded leniently one by one; unknown fields are ignored.
type wireProfile struct {
	Success          json.RawMessage `json:"success"`
	Agent            json.RawMessage `json:"agent"`
	RecentPosts      json.RawMessage `json:"recentPosts"`
	RecentPostsSnake json.RawMessage `json:"recent_posts"`
}

type wireAgent struct {
	Name           flexString      `json:"name"`
	IsClaimed      flexBool        `json:"is_claimed"`
	IsClaimedCamel flexBool        `json:"isClaimed"`
	Owner          json.RawMessage `json:"owner"`
}

type wireOwner struct {
	XHandle      flexString `json:"x_handle"`
	XHandleCamel flexString `json:"xHandle"`
}

type wirePost struct {
	ID             flexString      `json:"id"`
	Title          flexString      `json:"title"`
	Content        flexString      `json:"content"`
	Submolt        json.RawMessage `json:"submolt"`
	CreatedAt      flexString      `json:"created_at"`
	CreatedAtCamel flexString      `json:"createdAt"`
}

// ParseProfile parses the body of a 200 answer to GET /agents/profile. It
// accepts is_claimed or isClaimed, recentPosts or recent_posts, submolt as a
// string or an object, an owner that is missing or null, and skips posts it
// cannot read rather than failing the whole answer. It fails only when the
// body is not a JSON object, says success:false, or has no agent object.
func ParseProfile(body []byte) (*Profile, error) {
	var w wireProfile
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, errors.New("not a JSON object")
	}
	if isFalse(w.Success) {
		return nil, errors.New("success is false")
	}
	var a wireAgent
	if !isObject(w.Agent) || json.Unmarshal(w.Agent, &a) != nil {
		return nil, errors.New("no agent object")
	}
	p := &Profile{Name: string(a.Name.v)}
	switch {
	case a.IsClaimed.set:
		p.Claimed = a.IsClaimed.v
	case a.IsClaimedCamel.set:
		p.Claimed = a.IsClaimedCamel.v
	}
	if isObject(a.Owner) {
		var o wireOwner
		if json.Unmarshal(a.Owner, &o) == nil {
			p.OwnerXHandle = strings.TrimPrefix(strings.TrimSpace(o.XHandle.v), "@")
			if p.OwnerXHandle == "" {
				p.OwnerXHandle = strings.TrimPrefix(strings.TrimSpace(o.XHandleCamel.v), "@")
			}
		}
	}
	posts := w.RecentPosts
	if !isArray(posts) {
		posts = w.RecentPostsSnake
	}
	if isArray(posts) {
		var raw []json.RawMessage
		if json.Unmarshal(posts, &raw) == nil {
			for _, r := range raw {
				var wp wirePost
				if !isObject(r) || json.Unmarshal(r, &wp) != nil {
					continue
				}
				post := Post{ID: wp.ID.v, Title: wp.Title.v, Content: wp.Content.v, Submolt: submoltName(wp.Submolt), CreatedAt: wp.CreatedAt.v}
				if post.CreatedAt == "" {
					post.CreatedAt = wp.CreatedAtCamel.v
				}
				p.Posts = append(p.Posts, post)
			}
		}
	}
	return p, nil
}

// submoltName reads a submolt given as "general" or as {"name":"general",...}.
func submoltName(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Name        flexString `json:"name"`
		DisplayName flexString `json:"display_name"`
	}
	if isObject(raw) && json.Unmarshal(raw, &o) == nil {
		if o.Name.v != "" {
			return o.Name.v
		}
		return o.DisplayName.v
	}
	return ""
}

// isErrorEnvelope reports whether body is Moltbook's error envelope
// {"success":false,"error":"..."}.
func isErrorEnvelope(body []byte) bool {
	var e struct {
		Success json.RawMessage `json:"success"`
		Error   json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	return isFalse(e.Success) || (len(e.Error) > 0 && e.Error[0] == '"')
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

func isArray(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '['
}

func isFalse(raw json.RawMessage) bool {
	var b flexBool
	return json.Unmarshal(raw, &b) == nil && b.set && !b.v
}

// flexBool accepts true/false, "true"/"false", 1/0; null or anything else
// leaves it unset rather than failing the whole answer.
type flexBool struct{ v, set bool }

func (b *flexBool) UnmarshalJSON(data []byte) error {
	s := strings.Trim(strings.TrimSpace(string(data)), `"`)
	if v, err := strconv.ParseBool(s); err == nil {
		b.v, b.set = v, true
	}
	return nil
}

// flexString accepts a string, a number (ids have been both), or null.
type flexString struct{ v string }

func (s *flexString) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case '"':
		var v string
		if json.Unmarshal(data, &v) == nil {
			s.v = v
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		s.v = string(data)
	}
	return nil
}
