{{/*
Names and labels.
*/}}
{{- define "platform.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "platform.name" -}}
{{- printf "%s-%s" (include "platform.fullname" .root) .component -}}
{{- end -}}

{{- define "platform.selectorLabels" -}}
app.kubernetes.io/name: gatehouse
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "platform.labels" -}}
{{ include "platform.selectorLabels" . }}
app.kubernetes.io/part-of: gatehouse
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/*
The namespace every object is created in.
*/}}
{{- define "platform.namespace" -}}
{{- .Release.Namespace -}}
{{- end -}}

{{/*
An image reference: registry/repository, then @digest when given, else :tag
(the chart's appVersion by default).
*/}}
{{- define "platform.image" -}}
{{- $image := .image -}}
{{- $registry := .root.Values.image.registry -}}
{{- $repository := $image.repository -}}
{{- if $registry }}{{ $repository = printf "%s/%s" (trimSuffix "/" $registry) $repository }}{{ end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .root.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
A value the Terraform root module outputs (terraform/envs/prod), by its
output name; required when the chart needs it.
*/}}
{{- define "platform.terraformOutput" -}}
{{- $value := index .root.Values.terraformOutputs .name -}}
{{- if kindIs "invalid" $value -}}
{{- fail (printf "terraformOutputs.%s is required on aws: pass the Terraform outputs (see deploy/README.md)" .name) -}}
{{- end -}}
{{- if kindIs "slice" $value }}{{ toJson $value }}{{ else }}{{ $value }}{{ end -}}
{{- end -}}

{{/*
The security context every container runs with: the restricted Pod Security
Standard, a read-only root file system, no capabilities.
*/}}
{{- define "platform.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "platform.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
Spread replicas over zones and nodes, preferring but not requiring it, so a
one-node k3s still schedules them.
*/}}
{{- define "platform.topologySpread" -}}
{{- if .root.Values.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "platform.selectorLabels" . | nindent 8 }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: {{ .root.Values.topologySpread.nodes }}
    labelSelector:
      matchLabels:
        {{- include "platform.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end -}}

{{/*
Prometheus scrape annotations for a pod, when asked for.
*/}}
{{- define "platform.scrapeAnnotations" -}}
{{- if .root.Values.metrics.scrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/*
The name of the Secret holding DATABASE_URL, the signing key, the identity
key and the first superuser.
*/}}
{{- define "platform.secretName" -}}
{{- if eq .Values.secrets.source "existingSecret" -}}
{{- required "secrets.existingSecret is required when secrets.source is existingSecret" .Values.secrets.existingSecret -}}
{{- else -}}
{{- include "platform.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "platform.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "platform.secretName" .root }}
      key: {{ .name }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/*
Time a pod gets between SIGTERM and SIGKILL: the preStop pause (while
endpoints and load balancers let it go), the drain, and a margin.
*/}}
{{- define "platform.terminationGrace" -}}
{{- add .preStopSeconds .drainSeconds 5 -}}
{{- end -}}

{{/*
Where the host image keeps a migrations folder that deploy/host.toml names
relative to the checkout: plugins/migrations -> /opt/gatehouse/migrations,
plugins/<name>/migrations -> /opt/gatehouse/migrations/<name>.
*/}}
{{- define "platform.migrationsPath" -}}
{{- $rel := regexReplaceAll "^(\\.\\./)*(plugins/)?" . "" -}}
{{- $rel = regexReplaceAll "/?migrations/?$" $rel "" -}}
{{- trimSuffix "/" (printf "/opt/gatehouse/migrations/%s" $rel) -}}
{{- end -}}

{{/*
TOML from a map, for the host manifest and the proxy configuration. Helm's
toToml writes every number as a float, which the binaries refuse for their
integer settings; this keeps whole numbers whole.

  include "platform.toml" $map
*/}}
{{- define "platform.toml" -}}
{{- regexReplaceAll "^\\n+" (include "platform.toml.table" (dict "table" . "path" "" "depth" 1 "header" false)) "" -}}
{{- end -}}

{{- define "platform.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end -}}
{{- end -}}

{{/* "plain" (key = value), "table" ([a.b]) or "tables" ([[a.b]]). */}}
{{- define "platform.toml.kind" -}}
{{- $v := .value -}}
{{- if kindIs "map" $v -}}
{{- $inline := and (ge .depth 2) (le (len $v) 3) -}}
{{- range $k, $x := $v }}{{ if or (kindIs "map" $x) (kindIs "slice" $x) }}{{ $inline = false }}{{ end }}{{ end -}}
{{- if or $inline (eq (len $v) 0) }}plain{{ else }}table{{ end -}}
{{- else if and (kindIs "slice" $v) (gt (len $v) 0) (kindIs "map" (first $v)) -}}
tables
{{- else -}}
plain
{{- end -}}
{{- end -}}

{{- define "platform.toml.value" -}}
{{- $v := . -}}
{{- if kindIs "string" $v -}}
{{ toJson $v }}
{{- else if kindIs "bool" $v -}}
{{ ternary "true" "false" $v }}
{{- else if kindIs "float64" $v -}}
{{- if eq (floor $v) $v }}{{ printf "%d" (int64 $v) }}{{ else }}{{ printf "%v" $v }}{{ end -}}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) -}}
{{ printf "%d" $v }}
{{- else if kindIs "slice" $v -}}
{{- $items := list -}}
{{- range $v }}{{ $items = append $items (include "platform.toml.value" .) }}{{ end -}}
[{{ join ", " $items }}]
{{- else if kindIs "map" $v -}}
{{- $items := list -}}
{{- range $k, $x := $v }}{{ $items = append $items (printf "%s = %s" (include "platform.toml.key" $k) (include "platform.toml.value" $x)) }}{{ end -}}
{{- if $items }}{ {{ join ", " $items }} }{{ else }}{}{{ end -}}
{{- else -}}
{{- fail (printf "cannot write %v (%s) as TOML" $v (kindOf $v)) -}}
{{- end -}}
{{- end -}}

{{- define "platform.toml.table" -}}
{{- $path := .path -}}
{{- $depth := .depth -}}
{{- $plain := list -}}
{{- range $k, $v := .table }}
{{- if and (not (kindIs "invalid" $v)) (eq (include "platform.toml.kind" (dict "value" $v "depth" $depth)) "plain") }}
{{- $plain = append $plain (printf "%s = %s" (include "platform.toml.key" $k) (include "platform.toml.value" $v)) }}
{{- end }}
{{- end }}
{{- if and .header $plain }}
{{ printf "\n[%s]" $path }}
{{- end }}
{{- range $plain }}
{{ . }}
{{- end }}
{{- range $k, $v := .table }}
{{- $kind := "" }}
{{- if not (kindIs "invalid" $v) }}{{ $kind = include "platform.toml.kind" (dict "value" $v "depth" $depth) }}{{ end }}
{{- $sub := include "platform.toml.key" $k }}
{{- if $path }}{{ $sub = printf "%s.%s" $path $sub }}{{ end }}
{{- if eq $kind "table" }}
{{- include "platform.toml.table" (dict "table" $v "path" $sub "depth" (add1 $depth) "header" true) }}
{{- else if eq $kind "tables" }}
{{- range $element := $v }}
{{ printf "\n[[%s]]" $sub }}
{{- include "platform.toml.table" (dict "table" $element "path" $sub "depth" (add1 $depth) "header" false) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The host manifest: deploy/host.toml, the file `cargo xtask run` uses, with
the values' overrides (host.manifest) and what differs in a pod: listen
addresses, the drain time, the compile cache, and the image's paths for
components and migrations.
*/}}
{{- define "platform.hostManifest" -}}
{{- $m := .Files.Get "files/host.toml" | fromToml -}}
{{- if $m.Error }}{{ fail (printf "files/host.toml: %s" $m.Error) }}{{ end -}}
{{- $m = mergeOverwrite $m (deepCopy .Values.host.manifest) -}}
{{- $server := default dict $m.server -}}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.host.port)) -}}
{{- $_ := set $server "admin_listen" (printf "0.0.0.0:%d" (int .Values.host.adminPort)) -}}
{{- $_ := set $server "drain_seconds" (int .Values.host.drainSeconds) -}}
{{- $_ := set $server "compile_cache" "/var/cache/gatehouse" -}}
{{- $_ := set $m "server" $server -}}
{{- range $name, $component := $m.component -}}
{{- $_ := set $component "file" (printf "/opt/gatehouse/components/%s" (base $component.file)) -}}
{{- range $database, $dir := (default dict $component.migrations) -}}
{{- $_ := set $component.migrations $database (include "platform.migrationsPath" $dir) -}}
{{- end -}}
{{- end -}}
{{- range $name, $database := (default dict $m.database) -}}
{{- if $database.migrations }}{{ $_ := set $database "migrations" (include "platform.migrationsPath" $database.migrations) }}{{ end -}}
{{- end -}}
{{- include "platform.toml" $m -}}
{{- end -}}

{{/*
The proxy configuration: deploy/proxy.toml with the values' overrides
(proxy.config), listening on all addresses, its upstream the host Service,
and (unless told otherwise) the signing keys fetched from the auth service.
*/}}
{{- define "platform.proxyConfig" -}}
{{- $c := .Files.Get "files/proxy.toml" | fromToml -}}
{{- if $c.Error }}{{ fail (printf "files/proxy.toml: %s" $c.Error) }}{{ end -}}
{{- $c = mergeOverwrite $c (deepCopy .Values.proxy.config) -}}
{{- $hostAddress := printf "%s.%s.svc.cluster.local:%d" (include "platform.name" (dict "root" . "component" "host")) .Release.Namespace (int .Values.host.port) -}}
{{- $_ := set $c "listen" (printf "0.0.0.0:%d" (int .Values.proxy.port)) -}}
{{- $_ := set $c "admin_listen" (printf "0.0.0.0:%d" (int .Values.proxy.adminPort)) -}}
{{- $_ := set $c "drain_seconds" (int .Values.proxy.drainSeconds) -}}
{{- $upstreams := default dict $c.upstream -}}
{{- $runtime := default dict $upstreams.runtime -}}
{{- $_ := set $runtime "addresses" (list $hostAddress) -}}
{{- $_ := set $runtime "health_check_path" "/readyz" -}}
{{- $_ := set $runtime "health_check_port" (int .Values.host.adminPort) -}}
{{- $_ := set $upstreams "runtime" $runtime -}}
{{- $_ := set $c "upstream" $upstreams -}}
{{- /* The frontend's export, where the proxy image keeps it. */ -}}
{{- $files := default dict $c.files -}}
{{- $frontend := default dict $files.frontend -}}
{{- $_ := set $frontend "root" "/opt/gatehouse/frontend" -}}
{{- $_ := set $files "frontend" $frontend -}}
{{- $_ := set $c "files" $files -}}
{{- if .Values.proxy.fetchSigningKeys -}}
{{- $_ := set $c.jwt "jwks_url" (printf "http://%s/auth/api/v1/.well-known/jwks.json" $hostAddress) -}}
{{- end -}}
{{- if and (eq .Values.platform "aws") (not (hasKey .Values.proxy.config "trusted_proxies")) -}}
{{- $_ := set $c "trusted_proxies" (include "platform.terraformOutput" (dict "root" . "name" "public_subnet_cidrs") | fromJsonArray) -}}
{{- end -}}
{{- include "platform.toml" $c -}}
{{- end -}}

{{/*
The development Secret's values: those of the Secret already installed
(found with lookup), or new ones. Made once per render and shared by the
templates that need them.
*/}}
{{- define "platform.generatedSecrets" -}}
{{- if not (hasKey .Values "generatedSecrets_") -}}
{{- $data := dict -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "platform.fullname" .) -}}
{{- if $existing }}{{ range $key, $value := $existing.data }}{{ $_ := set $data $key (b64dec $value) }}{{ end }}{{ end -}}
{{- if not $data.POSTGRES_PASSWORD }}{{ $_ := set $data "POSTGRES_PASSWORD" (randAlphaNum 32) }}{{ end -}}
{{- if not $data.JWT_PRIVATE_KEY }}{{ $_ := set $data "JWT_PRIVATE_KEY" (genPrivateKey "ed25519") }}{{ end -}}
{{- if not $data.JWT_KEY_ID }}{{ $_ := set $data "JWT_KEY_ID" (printf "dev-%s" (randAlphaNum 12 | lower)) }}{{ end -}}
{{- if not $data.GATEHOUSE_IDENTITY_KEY }}{{ $_ := set $data "GATEHOUSE_IDENTITY_KEY" (randAlphaNum 64) }}{{ end -}}
{{- if not $data.FIRST_SUPERUSER_PASSWORD }}{{ $_ := set $data "FIRST_SUPERUSER_PASSWORD" (randAlphaNum 24) }}{{ end -}}
{{- $_ := set $data "FIRST_SUPERUSER" .Values.secrets.firstSuperuser -}}
{{- $_ := set $data "DATABASE_URL" (printf "postgres://%s:%s@%s.%s.svc.cluster.local:5432/%s?sslmode=disable" .Values.database.user $data.POSTGRES_PASSWORD (include "platform.name" (dict "root" . "component" "postgresql")) .Release.Namespace .Values.database.name) -}}
{{- $_ := set .Values "generatedSecrets_" $data -}}
{{- end -}}
{{- toJson (index .Values "generatedSecrets_") -}}
{{- end -}}

{{/*
DATABASE_URL for a database outside the release, as the External Secrets
Operator writes it: credentials from the RDS-managed secret, TLS verified
against the CA bundle when one is given.
*/}}
{{- define "platform.externalDatabaseUrl" -}}
{{- $ssl := "sslmode=require" -}}
{{- if .Values.database.external.caBundle }}{{ $ssl = "sslmode=verify-full&sslrootcert=/etc/gatehouse/db-ca/ca.pem" }}{{ end -}}
{{- printf "postgres://{{ .db_username | urlquery }}:{{ .db_password | urlquery }}@%s:%v/%s?%s" (include "platform.terraformOutput" (dict "root" . "name" "rds_address")) (include "platform.terraformOutput" (dict "root" . "name" "rds_port")) .Values.database.name $ssl -}}
{{- end -}}

{{/*
NetworkPolicy rules the components share: DNS, the database, the scraper.
*/}}
{{- define "platform.dnsEgress" -}}
- to:
    - namespaceSelector:
        {{- toYaml .Values.networkPolicy.dnsNamespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml .Values.networkPolicy.dnsPodSelector | nindent 8 }}
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end -}}
{{- define "platform.databaseEgress" -}}
{{- if .Values.database.internal.enabled -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "platform.selectorLabels" (dict "root" . "component" "postgresql") | nindent 10 }}
  ports:
    - {protocol: TCP, port: 5432}
{{- else -}}
- to:
    {{- $cidrs := .Values.database.external.cidrs }}
    {{- if and (not $cidrs) (eq .Values.platform "aws") }}{{ $cidrs = include "platform.terraformOutput" (dict "root" . "name" "database_subnet_cidrs") | fromJsonArray }}{{ end }}
    {{- range required "database.external.cidrs is required for a database outside the release" $cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - {protocol: TCP, port: {{ .Values.database.external.port }}}
{{- end -}}
{{- end -}}
{{- define "platform.scraperIngress" -}}
- from:
    - namespaceSelector:
        {{- toYaml .root.Values.metrics.scraperNamespaceSelector | nindent 8 }}
  ports:
    - {protocol: TCP, port: {{ .port }}}
{{- end -}}

{{/*
Images imported into a development cluster are not pulled: say so to
checkov where the pull policy is not Always.
*/}}
{{- define "platform.pullPolicySkip" -}}
{{- if ne .Values.image.pullPolicy "Always" }}
checkov.io/skip9: CKV_K8S_15=development images are imported into the cluster, not pulled; production overlays pull Always
{{- end }}
{{- end -}}
