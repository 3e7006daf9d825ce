package elasticsearch

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
)

// templateSpec is one index template to install.
type templateSpec struct {
	name string
	body []byte
}

// checkTemplates reads the template files at check, so that a missing or
// broken file fails there, not at the first start.
func (o *Output) checkTemplates() error {
	_, err := o.templateSpecs()
	if err == nil && o.EnableILM && o.ILMPolicy != "" && !json.Valid([]byte(o.ILMPolicy)) {
		err = fmt.Errorf("ilm_policy is not JSON")
	}
	if err == nil && o.DataStreamILMPolicy != "" && !json.Valid([]byte(o.DataStreamILMPolicy)) {
		err = fmt.Errorf("data_stream_ilm_policy is not JSON")
	}
	return err
}

func (o *Output) templateSpecs() ([]templateSpec, error) {
	files := map[string]string{}
	if o.TemplateName != "" || o.TemplateFile != "" {
		if o.TemplateName == "" || o.TemplateFile == "" {
			return nil, fmt.Errorf("template_name and template_file go together")
		}
		files[o.TemplateName] = o.TemplateFile
	}
	for name, file := range o.Templates {
		files[name] = file
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var specs []templateSpec
	for _, name := range names {
		raw, err := os.ReadFile(files[name])
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		text := string(raw)
		keys := make([]string, 0, len(o.CustomizeTemplate))
		for k := range o.CustomizeTemplate {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			text = strings.ReplaceAll(text, k, o.CustomizeTemplate[k])
		}
		if !json.Valid([]byte(text)) {
			return nil, fmt.Errorf("template %s (%s) is not JSON", name, files[name])
		}
		specs = append(specs, templateSpec{name: name, body: []byte(text)})
	}
	return specs, nil
}

// putAll installs the lifecycle policy, the templates and a data
// stream's template, each unless it exists (or its overwrite is set).
func (o *Output) putAll(ctx context.Context) error {
	if o.EnableILM && !o.opensearch {
		policy := o.ILMPolicy
		if policy == "" {
			policy = `{"policy":{"phases":{"hot":{"actions":{"rollover":{"max_size":"50gb","max_age":"30d"}}}}}}`
		}
		if err := o.put(ctx, "/_ilm/policy/"+o.ILMPolicyID, []byte(policy), o.ILMPolicyOverwrite); err != nil {
			return err
		}
	} else if o.EnableILM {
		o.log.Warn("enable_ilm is ignored on OpenSearch, which has Index State Management (_plugins/_ism) instead")
	}
	specs, err := o.templateSpecs()
	if err != nil {
		return err
	}
	api := "/_template/"
	if !o.UseLegacyTemplate {
		api = "/_index_template/"
	}
	for _, t := range specs {
		if err := o.put(ctx, api+t.name, t.body, o.TemplateOverwrite); err != nil {
			return err
		}
	}
	if !o.dataStream || strings.Contains(o.DataStreamName, "${") {
		return nil
	}
	if o.DataStreamILMName != "" && o.DataStreamILMPolicy != "" && !o.opensearch {
		if err := o.put(ctx, "/_ilm/policy/"+o.DataStreamILMName, []byte(o.DataStreamILMPolicy), o.DataStreamILMPolicyOverwrite); err != nil {
			return err
		}
	}
	name := o.DataStreamTemplateName
	if name == "" {
		name = o.DataStreamName
	}
	pattern := o.DataStreamName
	if o.DataStreamTemplateUseIndexPatterns {
		pattern += "*"
	}
	tmpl := map[string]any{"index_patterns": []string{pattern}, "data_stream": map[string]any{}, "priority": 500}
	if o.DataStreamILMName != "" && !o.opensearch {
		tmpl["template"] = map[string]any{"settings": map[string]any{"index.lifecycle.name": o.DataStreamILMName}}
	}
	body, _ := json.Marshal(tmpl)
	return o.put(ctx, "/_index_template/"+name, body, false)
}

// put installs body at path unless it exists (a HEAD or GET answers 200)
// or overwrite is set.
func (o *Output) put(ctx context.Context, path string, body []byte, overwrite bool) error {
	if !overwrite {
		resp, _, err := o.client.do(ctx, http.MethodGet, path, "", nil, "")
		if err == nil && resp.status == 200 {
			return nil
		}
	}
	resp, _, err := o.client.do(ctx, http.MethodPut, path, "", body, "application/json")
	if err != nil {
		return fmt.Errorf("PUT %s: %w", path, err)
	}
	if resp.status/100 != 2 {
		return fmt.Errorf("PUT %s: %d %s", path, resp.status, strings.TrimSpace(string(resp.body)))
	}
	o.log.Info("installed", "path", path)
	return nil
}
