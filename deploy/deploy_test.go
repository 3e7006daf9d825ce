// Package deploy holds the deployment artefacts: the Dockerfile's default
// configuration, the Helm chart and the manifests rendered from it, and
// the ECS task definitions and CloudFormation template. This test reads
// them and checks the values that must agree across files: ports, probe
// paths, stop timeouts against shutdown_timeout, volumes against buffer
// paths, and that each Sluice configuration passes `sluice check`.
// scripts/test also lints the chart and validates the manifests against
// the Kubernetes API's schemas (scripts/deploy-artifacts).
package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/output"
	_ "github.com/sluice-log/sluice/internal/plugins/all"
)

// sluiceFacts is what the artefacts around a configuration must agree with.
type sluiceFacts struct {
	forwardPort, metricsPort int
	shutdown                 time.Duration
	rootDir                  string
	bufferPaths              []string
	// memory is the most the configuration's buffers can hold in memory,
	// per docs/buffer.md: every memory buffer's total_limit_size, every
	// output's flush threads each holding a chunk, in_forward's receive
	// budget, plus headroom for the runtime.
	memory int64
}

// receiveBudget and runtimeHeadroom are the constants of docs/buffer.md's
// memory bound.
const receiveBudget, runtimeHeadroom = 128 << 20, 64 << 20

// checkConf builds the configuration as `sluice check` does and reads the
// facts off it.
func checkConf(t *testing.T, name string, text []byte) sluiceFacts {
	t.Helper()
	root, err := config.Parse(name, text, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Build(root, engine.Options{})
	if err != nil {
		t.Fatalf("%s does not pass sluice check:\n%v", name, err)
	}
	f := sluiceFacts{forwardPort: -1, metricsPort: -1, shutdown: eng.System.ShutdownTimeout, rootDir: eng.System.RootDir}
	for _, src := range root.Sections("source") {
		typ, _ := src.Get("@type")
		port := func(def int) int {
			if p, ok := src.Get("port"); ok {
				n, err := strconv.Atoi(p)
				if err != nil {
					t.Fatalf("%s: port %q", name, p)
				}
				return n
			}
			return def
		}
		switch typ {
		case "forward":
			f.forwardPort = port(24224)
		case "prometheus":
			f.metricsPort = port(24231)
		}
	}
	f.memory = receiveBudget + runtimeHeadroom
	var walk func(*config.Element)
	walk = func(el *config.Element) {
		for _, c := range el.Elements {
			if c.Name == "buffer" {
				typ, ok := c.Get("@type")
				if !ok {
					typ = "memory"
				}
				cfg := output.DefaultBufferConfig(typ)
				if err := config.Decode(c, &cfg); err != nil {
					t.Fatal(err)
				}
				f.memory += int64(cfg.FlushThreadCount) * int64(cfg.ChunkLimitSize)
				if typ == "file" {
					p, _ := c.Get("path")
					f.bufferPaths = append(f.bufferPaths, p)
				} else {
					f.memory += int64(cfg.TotalLimitSize)
				}
			}
			walk(c)
		}
	}
	walk(root)
	if f.forwardPort < 0 || f.metricsPort < 0 {
		t.Fatalf("%s: needs a forward and a prometheus source (ports %d, %d)", name, f.forwardPort, f.metricsPort)
	}
	return f
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func TestDockerfile(t *testing.T) {
	df := string(read(t, "../Dockerfile"))
	facts := checkConf(t, "docker/fluent.conf", read(t, "docker/fluent.conf"))
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) < 2 || froms[len(froms)-1][1] != "scratch" {
		t.Errorf("want a multi-stage build ending on an empty base, got FROM %v", froms)
	}
	for _, want := range []string{"CGO_ENABLED=0", "ARG CONFIG=deploy/docker/fluent.conf", "sluice check -c"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`(?m)^USER\s+(\d+)`).FindStringSubmatch(df); m == nil || m[1] == "0" {
		t.Errorf("the image must run as a non-root numeric user, got %v", m)
	}
	// The health check probes the admin listener the image turns on, so
	// that it passes whatever configuration is mounted.
	admin := regexp.MustCompile(`(?m)^ENV SLUICE_ADMIN_ADDR=[^:\s]*:(\d+)$`).FindStringSubmatch(df)
	if admin == nil {
		t.Fatal("the image must turn the admin listener on (ENV SLUICE_ADMIN_ADDR=HOST:PORT)")
	}
	if admin[1] == strconv.Itoa(facts.metricsPort) || admin[1] == strconv.Itoa(facts.forwardPort) {
		t.Errorf("the admin port %s must not be one the configuration takes", admin[1])
	}
	hc := regexp.MustCompile(`(?m)^\s*CMD \["/sluice", "probe", "http://127\.0\.0\.1:(\d+)/healthz"\]`).FindStringSubmatch(df)
	if hc == nil || hc[1] != admin[1] {
		t.Errorf("HEALTHCHECK must probe /healthz on the admin port %s, got %v", admin[1], hc)
	}
	for _, port := range []string{fmt.Sprintf("%d/tcp", facts.forwardPort), fmt.Sprintf("%d/tcp", facts.metricsPort), admin[1] + "/tcp"} {
		if !regexp.MustCompile(`(?m)^EXPOSE .*\b` + regexp.QuoteMeta(port)).MatchString(df) {
			t.Errorf("EXPOSE lacks %s", port)
		}
	}
	if m := regexp.MustCompile(`(?m)^VOLUME\s+(\S+)`).FindStringSubmatch(df); m == nil || facts.rootDir == "" || !under(facts.rootDir, m[1]) {
		t.Errorf("root_dir %q must be on the image's volume (%v)", facts.rootDir, m)
	}
}

// manifests decodes every document of a multi-document YAML file.
func manifests(t *testing.T, path string) map[string]map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(read(t, path)))
	out := map[string]map[string]any{}
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc == nil {
			continue
		}
		name := get(doc, "metadata", "name").(string)
		out[doc["kind"].(string)+"/"+name] = doc
	}
	return out
}

// get walks maps and lists (by int index) along path.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func num(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case float64:
		return int(n)
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return -1
}

func TestKubernetesManifests(t *testing.T) {
	docs := manifests(t, "kubernetes/sluice.yaml")
	cm := docs["ConfigMap/sluice"]
	sts := docs["StatefulSet/sluice"]
	if cm == nil || sts == nil {
		t.Fatalf("want ConfigMap and StatefulSet named sluice, have %v", keysOf(docs))
	}
	facts := checkConf(t, "ConfigMap sluice.conf", []byte(get(cm, "data", "sluice.conf").(string)))
	pod := get(sts, "spec", "template", "spec")
	c := get(pod, "containers", 0)
	ports := map[string]int{}
	for _, p := range get(c, "ports").([]any) {
		ports[get(p, "name").(string)] = num(get(p, "containerPort"))
	}
	if ports["forward"] != facts.forwardPort || ports["metrics"] != facts.metricsPort {
		t.Errorf("container ports %v, configuration forward %d metrics %d", ports, facts.forwardPort, facts.metricsPort)
	}
	// The probes go to the admin listener, which serves them whatever the
	// configuration holds; its port is none the configuration takes.
	adminAddr := ""
	for _, e := range get(c, "env").([]any) {
		if get(e, "name") == "SLUICE_ADMIN_ADDR" {
			adminAddr = fmt.Sprint(get(e, "value"))
		}
	}
	if !strings.HasSuffix(adminAddr, fmt.Sprintf(":%d", ports["admin"])) || ports["admin"] == facts.metricsPort || ports["admin"] == facts.forwardPort {
		t.Errorf("SLUICE_ADMIN_ADDR %q must listen on the admin container port %d, which the configuration must not take", adminAddr, ports["admin"])
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if get(c, probe, "httpGet", "path") != path || get(c, probe, "httpGet", "port") != "admin" {
			t.Errorf("%s must GET %s on the admin port, got %v", probe, path, get(c, probe))
		}
	}
	grace := time.Duration(num(get(pod, "terminationGracePeriodSeconds"))) * time.Second
	if grace <= facts.shutdown+5*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v must exceed shutdown_timeout %v by more than 5 s", grace, facts.shutdown)
	}
	limit, err := config.ParseSize(strings.TrimSuffix(fmt.Sprint(get(c, "resources", "limits", "memory")), "i"))
	if err != nil || limit < facts.memory {
		t.Errorf("memory limit %v is below what the buffers may hold (%d MiB)", get(c, "resources", "limits", "memory"), facts.memory>>20)
	}
	if get(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("pods must run as non-root")
	}
	var mount string
	for _, m := range get(c, "volumeMounts").([]any) {
		if get(m, "name") == "buffer" {
			mount = get(m, "mountPath").(string)
		}
	}
	if get(sts, "spec", "volumeClaimTemplates", 0, "metadata", "name") != "buffer" || mount == "" {
		t.Fatal("the buffer must be a persistent volume claim template mounted in the container")
	}
	if facts.rootDir != "" && !under(facts.rootDir, mount) {
		t.Errorf("root_dir %s is not on the buffer volume %s", facts.rootDir, mount)
	}
	for _, p := range facts.bufferPaths {
		if p != "" && !under(p, mount) {
			t.Errorf("file buffer %s is not on the buffer volume %s", p, mount)
		}
	}
	if len(facts.bufferPaths) == 0 {
		t.Error("the configuration has no file buffer: a restart would lose what it holds")
	}

	labels := get(sts, "spec", "template", "metadata", "labels").(map[string]any)
	matches := func(sel any) bool {
		m, ok := sel.(map[string]any)
		if !ok || len(m) == 0 {
			return false
		}
		for k, v := range m {
			if labels[k] != v {
				return false
			}
		}
		return true
	}
	svc := docs["Service/sluice"]
	if svc == nil || !matches(get(svc, "spec", "selector")) || num(get(svc, "spec", "ports", 0, "port")) != facts.forwardPort {
		t.Errorf("Service sluice must select the pods and serve the forward port: %v", get(svc, "spec"))
	}
	if hs := docs["Service/sluice-pods"]; hs == nil || get(hs, "spec", "clusterIP") != "None" || get(sts, "spec", "serviceName") != "sluice-pods" {
		t.Error("the StatefulSet needs its headless governing Service")
	}
	pdb := docs["PodDisruptionBudget/sluice"]
	if pdb == nil || !matches(get(pdb, "spec", "selector", "matchLabels")) {
		t.Error("the PodDisruptionBudget must select the pods")
	}
	hpa := docs["HorizontalPodAutoscaler/sluice"]
	if hpa == nil || get(hpa, "spec", "scaleTargetRef", "kind") != "StatefulSet" || get(hpa, "spec", "scaleTargetRef", "name") != "sluice" ||
		get(hpa, "spec", "metrics", 0, "resource", "name") != "cpu" {
		t.Errorf("the autoscaler must scale the StatefulSet on CPU: %v", get(hpa, "spec"))
	}
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func jsonFile(t *testing.T, path string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(read(t, path), &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func yamlFile(t *testing.T, path string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal(read(t, path), &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func TestECS(t *testing.T) {
	facts := checkConf(t, "ecs/sluice.conf", read(t, "ecs/sluice.conf"))
	td := jsonFile(t, "ecs/task-definition.json")
	cfn := yamlFile(t, "ecs/cloudformation.yaml")
	res := func(name string) any { return get(cfn, "Resources", name, "Properties") }

	// The standalone task definition and the template's say the same.
	c := get(td, "containerDefinitions", 0)
	cc := get(res("TaskDefinition"), "ContainerDefinitions", 0)
	pairs := []struct {
		what   string
		td, cf any
	}{
		{"container name", get(c, "name"), get(cc, "Name")},
		{"cpu", get(td, "cpu"), get(res("TaskDefinition"), "Cpu")},
		{"memory", get(td, "memory"), get(res("TaskDefinition"), "Memory")},
		{"stop timeout", num(get(c, "stopTimeout")), num(get(cc, "StopTimeout"))},
		{"health check", fmt.Sprint(get(c, "healthCheck", "command")), fmt.Sprint(get(cc, "HealthCheck", "Command"))},
	}
	for i := 0; i < 3; i++ {
		pairs = append(pairs, struct {
			what   string
			td, cf any
		}{fmt.Sprintf("port mapping %d", i), num(get(c, "portMappings", i, "containerPort")), num(get(cc, "PortMappings", i, "ContainerPort"))})
	}
	for _, p := range pairs {
		if fmt.Sprint(p.td) != fmt.Sprint(p.cf) {
			t.Errorf("%s: task-definition.json has %v, cloudformation.yaml %v", p.what, p.td, p.cf)
		}
	}

	if mem := int64(num(get(td, "memory"))) << 20; mem < facts.memory {
		t.Errorf("task memory %d MiB is below what the buffers may hold (%d MiB)", mem>>20, facts.memory>>20)
	}
	stop := time.Duration(num(get(c, "stopTimeout"))) * time.Second
	if stop <= facts.shutdown || stop > 120*time.Second {
		t.Errorf("stopTimeout %v must be above shutdown_timeout %v and at most Fargate's 120 s", stop, facts.shutdown)
	}
	// The health checks go to the admin listener (the environment turns
	// it on), which serves them whatever the configuration holds.
	adminPort := -1
	for _, e := range get(c, "environment").([]any) {
		if get(e, "name") == "SLUICE_ADMIN_ADDR" {
			if _, p, err := net.SplitHostPort(fmt.Sprint(get(e, "value"))); err == nil {
				adminPort = num(p)
			}
		}
	}
	if adminPort < 0 || adminPort == facts.forwardPort || adminPort == facts.metricsPort {
		t.Errorf("SLUICE_ADMIN_ADDR must be set to a port the configuration does not take, got %d", adminPort)
	}
	if hc := fmt.Sprint(get(c, "healthCheck", "command")); !strings.Contains(hc, fmt.Sprintf(":%d/healthz", adminPort)) {
		t.Errorf("container health check %s must probe /healthz on the admin port %d", hc, adminPort)
	}
	if num(get(c, "portMappings", 0, "containerPort")) != facts.forwardPort || num(get(c, "portMappings", 1, "containerPort")) != facts.metricsPort ||
		num(get(c, "portMappings", 2, "containerPort")) != adminPort {
		t.Errorf("port mappings %v, want forward %d, metrics %d, admin %d", get(c, "portMappings"), facts.forwardPort, facts.metricsPort, adminPort)
	}

	tg := res("TargetGroup")
	if num(get(tg, "Port")) != facts.forwardPort || get(tg, "Protocol") != "TCP" || get(tg, "TargetType") != "ip" {
		t.Errorf("target group must be TCP on the forward port with ip targets: %v", tg)
	}
	if num(get(tg, "HealthCheckPort")) != adminPort || get(tg, "HealthCheckPath") != "/readyz" || get(tg, "HealthCheckProtocol") != "HTTP" {
		t.Errorf("target group health check must GET /readyz on the admin port %d: %v", adminPort, tg)
	}
	if l := res("Listener"); num(get(l, "Port")) != facts.forwardPort || get(l, "Protocol") != "TCP" {
		t.Errorf("listener: %v", l)
	}
	if get(res("LoadBalancer"), "Type") != "network" {
		t.Error("the load balancer must be a Network Load Balancer")
	}
	lb := get(res("Service"), "LoadBalancers", 0)
	if get(lb, "ContainerName") != get(cc, "Name") || num(get(lb, "ContainerPort")) != facts.forwardPort {
		t.Errorf("service load balancer mapping %v", lb)
	}
	if get(res("ScalingPolicy"), "TargetTrackingScalingPolicyConfiguration", "PredefinedMetricSpecification", "PredefinedMetricType") != "ECSServiceAverageCPUUtilization" {
		t.Error("the service must scale on CPU")
	}
	for _, p := range []string{"EnvironmentName", "DockerImage", "VPC", "Subnets", "Cluster", "ExecutionRoleArn", "MinTasks", "MaxTasks"} {
		if get(cfn, "Parameters", p) == nil {
			t.Errorf("parameter %s of seed 000's template is missing", p)
		}
	}

	client := jsonFile(t, "ecs/client-task-definition.json")
	lc := get(client, "containerDefinitions", 0, "logConfiguration")
	if get(lc, "logDriver") != "fluentd" || get(lc, "options", "fluentd-request-ack") != "true" {
		t.Errorf("client tasks must use the fluentd driver with fluentd-request-ack: %v", lc)
	}
	if addr, _ := get(lc, "options", "fluentd-address").(string); !strings.HasSuffix(addr, fmt.Sprintf(":%d", facts.forwardPort)) {
		t.Errorf("fluentd-address %q must use the forward port %d", addr, facts.forwardPort)
	}
}

// TestChartDashboardIsTheDashboard: the chart ships deploy/grafana's
// dashboard (a chart reads only its own files), and the two must not
// drift apart.
func TestChartDashboardIsTheDashboard(t *testing.T) {
	if !bytes.Equal(read(t, "grafana/sluice.json"), read(t, "helm/sluice/dashboards/sluice.json")) {
		t.Error("deploy/helm/sluice/dashboards/sluice.json differs from deploy/grafana/sluice.json: copy it again")
	}
}
