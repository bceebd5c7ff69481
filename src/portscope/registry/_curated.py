# ruff: noqa: E501
"""portscope's own table of the ports people meet daily, written for this project.

One line per service: ``PORT[-END] PROTOS NAME[,ALIAS...] | description | note``. PROTOS is
``t`` (TCP), ``u`` (UDP) or ``tu``; ``s`` is SCTP. The note is a key of ``_NOTES`` or free
text; empty when there is nothing to warn about. It includes de-facto ports that IANA
assigns to something else or to nobody (3000, 8080, 9090, 6443 ...), with the software that
really uses them. Parsed only when the compiled registry cache is (re)built.
"""

from __future__ import annotations

from portscope.registry._layout import Entry

_NOTES = {
    "plain": "Plaintext: passwords and data cross the network readable; use the TLS "
    "variant or a tunnel.",
    "internal": "Not meant to face the internet: bind to loopback or a private network and "
    "require authentication.",
    "noauth": "Often installed with no authentication at all; never expose it publicly.",
    "amp": "Usable for UDP reflection/amplification attacks when open to the internet.",
    "admin": "A management interface: reachable by administrators only, behind TLS and a firewall.",
    "dev": "A development server: not hardened; keep it on loopback.",
    "rcmd": "BSD r-commands: trust by host name and plaintext; replaced by SSH, disable.",
    "remote": "Remote desktop: a favourite target of password guessing; expose only behind "
    "a VPN or gateway.",
    "smb": "Windows file sharing: never expose to the internet (worms, relay attacks).",
}

# fmt: off
_TABLE = """
0     tu  reserved            | Port 0: not a real port; bind(0) asks the kernel to pick one |
1     t   tcpmux              | TCP port service multiplexer (RFC 1078), historic |
7     tu  echo                | Echo: sends back what it receives (RFC 862), historic | amp
9     tu  discard,sink,null   | Discard: drops what it receives (RFC 863); also Wake-on-LAN |
13    tu  daytime             | Daytime: the date as text (RFC 867), historic | amp
17    tu  qotd,quote          | Quote of the day (RFC 865), historic | amp
19    tu  chargen             | Character generator (RFC 864), historic | amp
20    t   ftp-data            | FTP data channel in active mode | plain
21    t   ftp                 | FTP control channel (vsftpd, ProFTPD, Pure-FTPd) | plain
22    t   ssh                 | Secure Shell: remote login, scp, sftp, git (OpenSSH, Dropbear) |
23    t   telnet              | Telnet remote terminal | plain
25    t   smtp                | SMTP mail transfer between servers (Postfix, Exim, Sendmail) | Unauthenticated relay must be disabled; STARTTLS is opportunistic.
37    tu  time                | Time protocol (RFC 868), seconds since 1900, historic |
42    tu  nameserver          | ARPA host name server (IEN 116), obsolete; also WINS replication |
43    t   whois,nicname       | WHOIS directory queries (RFC 3912) |
49    tu  tacacs              | TACACS+ network device AAA (Cisco) | Obfuscation only, not real encryption; keep on a management network.
53    tu  domain,dns          | DNS: name resolution (BIND, Unbound, dnsmasq, systemd-resolved) | An open resolver on the internet is an amplification vector; answer only your clients.
67    u   bootps,dhcp         | DHCP/BOOTP server (ISC dhcpd, Kea, dnsmasq) |
68    u   bootpc,dhcpc        | DHCP/BOOTP client |
69    u   tftp                | Trivial FTP: network boot images, router configs | No authentication at all; keep on a provisioning network.
70    t   gopher              | Gopher document retrieval (RFC 1436) |
79    t   finger              | Finger user information (RFC 1288) | Leaks user names; disable.
80    t   http,www            | HTTP web servers (nginx, Apache, Caddy, IIS) | plain
81    t   http-alt         | Alternative HTTP, seen on admin panels and proxies |
88    tu  kerberos,kerberos5  | Kerberos authentication (KDC: MIT, Heimdal, Active Directory) |
102   t   iso-tsap,s7comm     | ISO-TSAP; Siemens S7 PLC communication | Industrial control: never on the internet.
104   t   dicom               | DICOM medical imaging (PACS) | Often unauthenticated with patient data; keep internal.
110   t   pop3                | POP3 mail retrieval (Dovecot) | plain
111   tu  sunrpc,rpcbind,portmapper | ONC RPC port mapper (rpcbind), needed by NFSv3 | Leaks RPC services; an amplification vector over UDP.
113   t   ident,auth          | Ident: who owns a TCP connection (RFC 1413) |
119   t   nntp                | NNTP Usenet news transfer | plain
123   u   ntp                 | NTP time synchronisation (chrony, ntpd) | Old ntpd 'monlist' was a large amplification vector.
135   tu  msrpc,epmap         | Microsoft RPC endpoint mapper (DCE/RPC) | Windows internals; never expose to the internet.
137   u   netbios-ns          | NetBIOS name service (Windows, Samba nmbd) | smb
138   u   netbios-dgm         | NetBIOS datagram service (Windows, Samba) | smb
139   t   netbios-ssn         | NetBIOS session service: SMB over NetBIOS (Samba) | smb
143   t   imap                | IMAP mail access (Dovecot, Cyrus) | plain
161   u   snmp                | SNMP agent: device monitoring (net-snmp) | v1/v2c send the community string in clear; amplification vector. Use v3.
162   u   snmptrap,snmp-trap  | SNMP traps sent to a manager |
177   u   xdmcp               | X display manager control protocol | plain
179   t   bgp                 | BGP routing sessions (FRR, BIRD) | Restrict to configured peers; use TCP-AO or MD5 where supported.
194   t   irc             | IRC, the rarely used official port (6667 is the usual) |
389   tu  ldap                | LDAP directory (OpenLDAP, Active Directory) | Plaintext binds unless StartTLS is enforced.
427   tu  svrloc,slp          | Service Location Protocol | Amplification vector (CVE-2023-29552); disable if unused.
443   tu  https               | HTTPS: HTTP over TLS; over UDP, HTTP/3 on QUIC |
444   t   snpp                | Simple Network Paging Protocol |
445   t   microsoft-ds,smb    | SMB file sharing directly over TCP (Windows, Samba) | smb
464   tu  kpasswd             | Kerberos password change |
465   t   submissions,smtps   | Mail submission over implicit TLS (RFC 8314) |
500   u   isakmp,ike          | IKE key exchange for IPsec VPNs (strongSwan, Libreswan) |
502   t   modbus              | Modbus/TCP industrial control | No authentication; industrial control must never be reachable from the internet.
512   t   exec,rexec          | BSD rexec remote execution | rcmd
513   t   login,rlogin        | BSD rlogin remote login | rcmd
514   t   shell,rsh           | BSD rsh remote shell | rcmd
514   u   syslog              | Syslog over UDP (rsyslog, syslog-ng) | Unauthenticated and unencrypted; anyone can inject log lines.
515   t   printer,lpd         | LPD line printer daemon (CUPS, printers) |
520   u   rip,router          | RIP routing (v1/v2) |
521   u   ripng               | RIPng routing for IPv6 |
540   t   uucp                | UUCP transfer, historic |
546   u   dhcpv6-client       | DHCPv6 client |
547   u   dhcpv6-server       | DHCPv6 server |
548   t   afp                 | Apple Filing Protocol (Netatalk, older macOS) |
554   tu  rtsp                | RTSP streaming control: IP cameras, media servers | Cameras often ship with default passwords.
563   t   nntps               | NNTP over TLS |
587   t   submission          | Mail submission from clients, with STARTTLS and auth (RFC 6409) |
593   t   http-rpc-epmap      | Microsoft RPC over HTTP endpoint mapper |
623   u   asf-rmcp,ipmi       | IPMI/RMCP: server baseboard management (BMC) | BMCs have a long record of flaws; management network only.
631   tu  ipp                 | Internet Printing Protocol (CUPS) |
636   t   ldaps               | LDAP over TLS |
646   tu  ldp                 | MPLS Label Distribution Protocol |
853   tu  domain-s,dot        | DNS over TLS (RFC 7858); over UDP, DNS over QUIC |
860   t   iscsi           | iSCSI, the historic port (3260 is the usual) |
873   t   rsync               | rsync daemon | The daemon protocol is plaintext and may allow anonymous modules.
902   t   vmware-auth         | VMware ESXi/Workstation remote console and authd |
989   t   ftps-data           | FTP data over implicit TLS |
990   t   ftps                | FTP control over implicit TLS |
992   t   telnets             | Telnet over TLS |
993   t   imaps               | IMAP over TLS |
995   t   pop3s               | POP3 over TLS |
1080  t   socks               | SOCKS proxy (Dante, ssh -D) | An open proxy is abused for spam and attacks; require auth.
1194  tu  openvpn             | OpenVPN |
1241  t   nessus              | Nessus vulnerability scanner, older versions |
1433  t   ms-sql-s,mssql      | Microsoft SQL Server | internal
1434  u   ms-sql-m            | Microsoft SQL Server browser service | amp
1521  t   oracle,ncube-lm     | Oracle database listener (TNS) | internal
1645  u   radius-old          | RADIUS authentication, historic port |
1701  u   l2tp                | L2TP tunnels (usually with IPsec) |
1723  t   pptp                | PPTP VPN control | PPTP's MS-CHAPv2 is broken; replace with WireGuard or IPsec.
1812  u   radius              | RADIUS authentication (FreeRADIUS) |
1813  u   radius-acct         | RADIUS accounting |
1883  t   mqtt                | MQTT messaging for IoT (Mosquitto, EMQX, HiveMQ) | Plaintext, and brokers often allow anonymous clients; prefer 8883 with auth.
1900  u   ssdp,upnp           | SSDP: UPnP discovery on the local network | Amplification vector; must not answer from the internet.
2049  tu  nfs                 | NFS file sharing | Host-based trust; keep on a trusted network or use Kerberos (sec=krb5p).
2082  t   cpanel              | cPanel web hosting panel (HTTP) | admin
2083  t   cpanel-ssl          | cPanel web hosting panel (HTTPS) | admin
2181  t   zookeeper           | Apache ZooKeeper client port | internal
2222  t   ssh-alt             | Common alternative SSH port (containers, Gitea, DirectAdmin) |
2375  t   docker              | Docker Engine API without TLS | Root on the host for anyone who can reach it; never expose, use 2376 with TLS or the Unix socket.
2376  t   docker-s            | Docker Engine API over TLS with client certificates |
2377  t   swarm               | Docker Swarm cluster management |
2379  t   etcd-client         | etcd client API (Kubernetes' datastore) | Holds cluster secrets; require client TLS and keep it internal.
2380  t   etcd-server         | etcd peer-to-peer (cluster members) | internal
2483  t   oracle-tls          | Oracle database listener over TLS |
2484  t   oracle-tls     | Oracle database listener over TLS (alternative) |
2525  t   smtp-alt            | Alternative SMTP submission port used by mail services |
3000  t   dev-http            | De-facto: development web servers (Node.js/Express, Rails, Grafana, Gitea) | dev
3128  t   squid,http-proxy    | Squid HTTP proxy | An open proxy is abused; restrict clients.
3260  t   iscsi-target        | iSCSI storage targets | No encryption; keep on a storage network with CHAP.
3268  t   globalcatldap       | Active Directory global catalog (LDAP) |
3269  t   globalcatldapssl    | Active Directory global catalog over TLS |
3306  t   mysql               | MySQL and MariaDB database | internal
3389  tu  ms-wbt-server,rdp   | Remote Desktop Protocol (Windows RDP, xrdp) | remote
3478  tu  stun,turn           | STUN/TURN NAT traversal for WebRTC (coturn) |
3690  t   svn                 | Subversion server (svnserve) |
4369  t   epmd                | Erlang port mapper (RabbitMQ, CouchDB, Elixir clusters) | internal
4443  t   https-alt      | Alternative HTTPS, often admin consoles |
4500  u   ipsec-nat-t         | IPsec NAT traversal (IKE and ESP in UDP) |
4789  u   vxlan               | VXLAN overlay networks (Linux, Docker, Kubernetes CNIs) | Unauthenticated encapsulation; filter at the edge.
4840  t   opcua               | OPC UA industrial automation |
5000  t   dev-http       | De-facto: Flask and other development servers, Docker registry, UPnP, AirPlay on macOS | dev
5001  t   dev-https      | De-facto: development HTTPS (ASP.NET), iperf, Synology DSM |
5004  u   rtp                 | RTP media streams |
5005  u   rtcp                | RTP control |
5044  t   beats               | Logstash Beats input |
5060  tu  sip                 | SIP VoIP signalling (Asterisk, FreeSWITCH, Kamailio) | Constant toll-fraud scanning; require auth and rate limits.
5061  t   sips                | SIP over TLS |
5222  t   xmpp-client         | XMPP client connections (ejabberd, Prosody) |
5269  t   xmpp-server         | XMPP server-to-server federation |
5353  u   mdns                | Multicast DNS: .local names, Bonjour, Avahi | Link-local only; answering from the internet is an amplification vector.
5355  u   llmnr               | Link-Local Multicast Name Resolution (Windows) | Poisoning attacks steal credentials on the LAN; disable where unused.
5432  t   postgresql,postgres | PostgreSQL database | internal
5433  t   postgresql-alt      | De-facto: a second PostgreSQL cluster on the same host |
5601  t   kibana              | Kibana dashboards (Elastic) | internal
5631  t   pcanywheredata      | pcAnywhere remote control | remote
5666  t   nrpe                | Nagios remote plugin executor |
5672  t   amqp                | AMQP 0-9-1 messaging (RabbitMQ) | internal
5683  u   coap                | CoAP constrained IoT protocol | amp
5800  t   vnc-http            | VNC over HTTP (Java/web viewer) | remote
5900  t   vnc,rfb             | VNC remote desktop (RFB: TigerVNC, x11vnc, macOS Screen Sharing) | Weak or no passwords are common; tunnel over SSH or a VPN.
5938  t   teamviewer          | TeamViewer remote control | remote
5984  t   couchdb             | Apache CouchDB HTTP API | internal
5985  t   wsman,winrm         | Windows Remote Management over HTTP | admin
5986  t   wsmans,winrm-s      | Windows Remote Management over HTTPS | admin
6000-6063 t x11               | X Window System displays :0 to :63 | Unauthenticated X lets others read keystrokes; use ssh -X and -nolisten tcp.
6379  t   redis               | Redis key-value store | noauth
6443  t   kube-apiserver      | De-facto: Kubernetes API server | Controls the whole cluster; require authentication, restrict sources.
6514  t   syslog-tls          | Syslog over TLS (RFC 5425) |
6660-6669 t irc               | IRC chat (6667 the classic plaintext port) | plain
6697  t   ircs-u              | IRC over TLS |
7000  t   cassandra-inter     | De-facto: Cassandra inter-node traffic |
7001  t   weblogic            | De-facto: Oracle WebLogic admin and apps | admin
7077  t   spark               | De-facto: Apache Spark standalone master | internal
7474  t   neo4j               | De-facto: Neo4j browser/HTTP API | internal
7687  t   bolt                | De-facto: Neo4j Bolt protocol | internal
8000  t   http-alt       | De-facto: development and app servers (Django runserver, python -m http.server) | dev
8008  t   http-alt       | Alternative HTTP (Chromecast, proxies) |
8009  t   ajp13               | Apache JServ Protocol between a web server and Tomcat | Ghostcat (CVE-2020-1938): never expose AJP.
8080  t   http-alt,http-proxy | Alternative HTTP: Tomcat, Jenkins, proxies, app servers |
8081  t   http-alt       | Alternative HTTP: Nexus, sidecars, second app instance |
8086  t   influxdb            | De-facto: InfluxDB HTTP API | internal
8088  t   http-alt       | Alternative HTTP: Hadoop YARN resource manager, dashboards | YARN's unauthenticated API is used to run miners; keep internal.
8089  t   splunkd             | De-facto: Splunk management port | admin
8096  t   jellyfin            | De-facto: Jellyfin/Emby media server |
8123  t   home-assistant      | De-facto: Home Assistant web interface |
8200  t   vault               | De-facto: HashiCorp Vault API |
8300  t   consul-rpc          | De-facto: HashiCorp Consul server RPC | internal
8301  tu  consul-serf-lan     | De-facto: HashiCorp Consul LAN gossip | internal
8443  t   https-alt           | Alternative HTTPS: Tomcat, admin consoles, Kubernetes dashboards |
8500  t   consul              | De-facto: HashiCorp Consul HTTP API and UI | internal
8529  t   arangodb            | De-facto: ArangoDB | internal
8761  t   eureka              | De-facto: Netflix Eureka service registry |
8883  t   secure-mqtt,mqtts   | MQTT over TLS |
8888  t   jupyter             | De-facto: Jupyter Notebook/Lab, also proxies | A notebook runs code as its user; require a token and keep it on loopback.
9000  t   php-fpm,sonarqube   | De-facto: PHP-FPM FastCGI, SonarQube, MinIO API, Portainer | PHP-FPM executes what it is sent; never expose FastCGI.
9001  t   minio-console       | De-facto: MinIO console, Tor ORPort, supervisord |
9042  t   cassandra           | Apache Cassandra CQL native protocol | internal
9043  t   websphere-admin     | De-facto: IBM WebSphere admin console (HTTPS) | admin
9050  t   tor-socks           | Tor SOCKS proxy |
9090  t   prometheus          | De-facto: Prometheus server and UI (also Cockpit) | No authentication by default; keep internal.
9091  t   pushgateway         | De-facto: Prometheus Pushgateway; Transmission web UI |
9092  t   kafka               | De-facto: Apache Kafka brokers | internal
9093  t   alertmanager        | De-facto: Prometheus Alertmanager; Kafka TLS listener |
9100  t   node-exporter,jetdirect | De-facto: Prometheus node_exporter; raw printing (HP JetDirect) |
9200  t   elasticsearch       | De-facto: Elasticsearch/OpenSearch REST API | Exposed clusters are a classic data leak; require auth.
9300  t   elasticsearch-transport | De-facto: Elasticsearch node-to-node transport | internal
9418  t   git                 | Git daemon (git://) | Unauthenticated, read-only by design; prefer SSH or HTTPS.
9443  t   https-alt      | De-facto: Portainer, VMware, admin consoles over HTTPS | admin
10000 t   webmin,ndmp         | De-facto: Webmin administration; NDMP backup | admin
10250 t   kubelet             | De-facto: Kubernetes kubelet API | Can exec into pods; require authentication and authorization.
10255 t   kubelet-ro          | De-facto: Kubernetes kubelet read-only port (deprecated) | Unauthenticated; disable.
10256 t   kube-proxy-health   | De-facto: Kubernetes kube-proxy health check |
10257 t   kube-controller-manager | De-facto: Kubernetes controller manager (HTTPS) |
10259 t   kube-scheduler      | De-facto: Kubernetes scheduler (HTTPS) |
11211 tu  memcache,memcached  | memcached cache | noauth
11434 t   ollama              | De-facto: Ollama LLM server API | No authentication; keep on loopback.
15672 t   rabbitmq-mgmt       | De-facto: RabbitMQ management UI and HTTP API | admin
25565 t   minecraft           | De-facto: Minecraft Java Edition server |
27017 t   mongodb             | MongoDB database | Old defaults bound to all interfaces without auth; many databases were wiped for ransom.
27018 t   mongodb-shard       | MongoDB shard servers | internal
28015 t   rethinkdb           | De-facto: RethinkDB client driver port | internal
30000-32767 t kube-nodeport   | De-facto: Kubernetes NodePort service range (default) |
32400 t   plex                | De-facto: Plex Media Server |
33434 u   traceroute          | Traceroute probes (classic UDP traceroute start port) |
41641 u   tailscale           | De-facto: Tailscale WireGuard traffic |
50000 t   sap-http            | De-facto: SAP NetWeaver Java HTTP, Jenkins inbound agents, IBM Db2 |
50070 t   hdfs-namenode       | De-facto: Hadoop HDFS NameNode web UI (Hadoop 2) | internal
51820 u   wireguard           | De-facto: WireGuard VPN (wg-quick's usual port) |
60000-61000 u mosh            | De-facto: mosh mobile shell sessions |
161   t   snmp-tcp            | SNMP over TCP, rarely used |
1099  t   rmiregistry,java-rmi | Java RMI registry | Deserialization attacks; never expose.
1352  t   lotusnote           | IBM/HCL Notes and Domino |
1414  t   ibm-mqseries        | IBM MQ queue manager |
1604  u   citrix-ica-browser  | Citrix ICA browser (legacy) | amp
1720  t   h323hostcall        | H.323 VoIP call signalling |
2000  t   cisco-sccp          | Cisco Skinny (SCCP) phones; also often a test port |
2100  t   oracle-xdb-ftp      | Oracle XML DB FTP |
2424  t   orientdb            | De-facto: OrientDB binary protocol | internal
2480  t   orientdb-http       | De-facto: OrientDB HTTP API | internal
3001  t   dev-http       | De-facto: a second Node.js development server |
3030  t   dev-http       | De-facto: development servers (Grafana dev, Dashing) | dev
3333  t   dev-http       | De-facto: development servers, mining pools (Stratum) |
3310  t   clamd               | De-facto: ClamAV daemon (TCP socket) | internal
3299  t   saprouter     | De-facto: SAProuter |
3551  t   apcupsd             | APC UPS daemon network information server |
3724  t   blizzard            | Blizzard game clients (World of Warcraft) |
4000  t   dev-http       | De-facto: Jekyll, Phoenix and other dev servers | dev
4200  t   angular-dev         | De-facto: Angular CLI development server (ng serve) | dev
4222  t   nats                | De-facto: NATS messaging client port | internal
4444  t   metasploit,krb524   | De-facto: Metasploit default listener; often a reverse-shell sign | An unexpected listener here deserves a look.
4567  t   sinatra             | De-facto: Sinatra (Ruby) development server | dev
4848  t   glassfish-admin     | De-facto: GlassFish/Payara admin console | admin
5173  t   vite                | De-facto: Vite development server | dev
5555  t   adb,freeciv         | De-facto: Android Debug Bridge over TCP | Full shell on the device; never expose.
5632  u   pcanywherestat      | pcAnywhere status | remote
6566  t   sane-port           | SANE network scanner daemon |
6881-6889 tu bittorrent       | De-facto: BitTorrent peers |
7070  t   realserver          | De-facto: RealServer/RTSP, Anydesk fallback, various |
7443  t   https-alt      | De-facto: admin consoles over HTTPS (UniFi, Jitsi) | admin
7946  tu  serf                | De-facto: Docker Swarm/Consul/Serf gossip | internal
8001  t   http-alt       | De-facto: kubectl proxy, app servers |
8002  t   http-alt       | De-facto: app servers, Splunk-adjacent tools |
8082  t   http-alt       | De-facto: alternative HTTP (Kafka REST, admin UIs) |
8083  t   http-alt       | De-facto: alternative HTTP (Kafka Connect, InfluxDB 0.x admin) |
8084  t   http-alt       | De-facto: alternative HTTP |
8085  t   http-alt       | De-facto: alternative HTTP |
8090  t   http-alt       | De-facto: Confluence and other app servers |
8161  t   activemq-web        | De-facto: Apache ActiveMQ web console | admin
8180  t   http-alt       | De-facto: Tomcat alternative port |
8181  t   http-alt       | De-facto: alternative HTTP (GlassFish, Karaf) |
8222  t   nats-monitor        | De-facto: NATS monitoring HTTP |
8333  t   bitcoin             | De-facto: Bitcoin peer-to-peer network |
8384  t   syncthing-gui       | De-facto: Syncthing web GUI | admin
8545  t   ethereum-rpc        | De-facto: Ethereum JSON-RPC (geth) | An open RPC node can be abused; keep on loopback.
8880  t   http-alt       | De-facto: IBM WebSphere SOAP, alternative HTTP |
8983  t   solr                | De-facto: Apache Solr | internal
9115  t   blackbox-exporter   | De-facto: Prometheus blackbox exporter |
9187  t   postgres-exporter   | De-facto: Prometheus PostgreSQL exporter |
9229  t   node-inspector      | De-facto: Node.js --inspect debugger | Remote code execution for anyone who reaches it; loopback only.
9411  t   zipkin              | De-facto: Zipkin tracing |
9600  t   logstash-api        | De-facto: Logstash monitoring API |
9870  t   hdfs-namenode-ui    | De-facto: Hadoop HDFS NameNode web UI (Hadoop 3) | internal
10050 t   zabbix-agent        | Zabbix agent |
10051 t   zabbix-trapper      | Zabbix server trapper |
16379 t   redis-cluster-bus   | De-facto: Redis Cluster bus (client port + 10000) | internal
19132 u   minecraft-bedrock   | De-facto: Minecraft Bedrock Edition server |
22000 tu  syncthing           | De-facto: Syncthing file synchronisation |
26257 t   cockroachdb         | De-facto: CockroachDB SQL and inter-node | internal
27015 tu  source-engine       | De-facto: Valve Source engine game servers (Steam) |
28017 t   mongodb-http        | MongoDB legacy HTTP status interface | Removed in 3.6; if present, very old and exposed.
3700  t   glassfish-iiop      | De-facto: GlassFish IIOP |
5050  t   mesos-master        | De-facto: Apache Mesos master |
5140  u   syslog-alt          | De-facto: alternative syslog listener for unprivileged collectors |
5671  t   amqps               | AMQP over TLS (RabbitMQ) |
6080  t   novnc               | De-facto: noVNC web VNC client | remote
6666  t   irc            | IRC; also abused by botnets |
"""
# fmt: on

_PROTO_LETTERS = {"t": "tcp", "u": "udp", "s": "sctp", "d": "dccp"}


def curated_entries() -> list[Entry]:
    """The curated table as registry entries (source ``curated``)."""
    out: list[Entry] = []
    for line in _TABLE.strip().splitlines():
        head, description, note = (part.strip() for part in line.split("|"))
        span, letters, names = head.split()
        lo, _, hi = span.partition("-")
        first, last = int(lo), int(hi) if hi else None
        name, *aliases = names.split(",")
        notes = _NOTES.get(note, note) or None
        for letter in letters:
            proto = _PROTO_LETTERS[letter]
            out.append(
                Entry(first, last, proto, name, tuple(aliases), description, "curated", notes, None)
            )
    return out
