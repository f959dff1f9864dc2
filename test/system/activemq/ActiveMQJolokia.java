// A real ActiveMQ Classic broker with Jolokia, for test/system/activemq.test.ts, built only from
// Debian packages: Debian's activemq 5.17.2 ships no web console and no Jolokia (the upstream
// modules activemq-web/-web-console are disabled in Debian), so this embeds Debian's broker
// (libactivemq-java) with JMX on the platform MBeanServer, and serves Debian's Jolokia 1.7.1
// AgentServlet (libjolokia-core-java, the version upstream 5.17.2 bundles) with Debian's Jetty 9.4
// (libjetty9-java) at /api/jolokia/*, behind HTTP Basic auth in realm ActiveMQRealm, with
// allowErrorDetails=false and upstream's jolokia-access.xml (Origin or Referer required), as
// upstream's conf/jetty.xml and webapps/api/WEB-INF/web.xml do.
// After test/fixtures/queue/recording/ActiveMQJolokiaHarness.java.
//
// Run with the JDK's source launcher (no build step), classpath from /usr/share/java:
//   VAKT_ACTIVEMQ_PASSWORD=... java -cp <jars> ActiveMQJolokia.java BASE_DIR OPENWIRE_PORT HTTP_PORT
// BASE_DIR must hold jolokia-access.xml; the broker keeps its (non-persistent) data under it.
// User "admin", password from the environment variable VAKT_ACTIVEMQ_PASSWORD (never an argument,
// so it does not show in ps). Listens on 127.0.0.1 only; no JMX connector (no RMI port).
// Prints "READY broker_ms=.. jolokia_ms=.." on stdout once both listen, then reads commands from
// stdin, one per line, and answers each with one line, "ok ..." or "error ...":
//   send QUEUE N        N persistent text messages to QUEUE
//   consume QUEUE       a consumer on QUEUE that acknowledges every message as it arrives
//   stop-consume QUEUE  closes that consumer
//   quit                stops Jetty and the broker and exits 0
// End of stdin (the test process gone) is a quit too, so a killed test leaves no JVM behind.
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Session;
import org.apache.activemq.ActiveMQConnectionFactory;
import org.apache.activemq.broker.BrokerService;
import org.eclipse.jetty.security.ConstraintMapping;
import org.eclipse.jetty.security.ConstraintSecurityHandler;
import org.eclipse.jetty.security.HashLoginService;
import org.eclipse.jetty.security.UserStore;
import org.eclipse.jetty.security.authentication.BasicAuthenticator;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;
import org.eclipse.jetty.util.security.Constraint;
import org.eclipse.jetty.util.security.Password;
import org.jolokia.http.AgentServlet;

public class ActiveMQJolokia {
  private static final long START = System.nanoTime();

  private static long ms() {
    return (System.nanoTime() - START) / 1_000_000;
  }

  private static void answer(String line) {
    System.out.println(line);
    System.out.flush();
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: java -cp <jars> ActiveMQJolokia.java BASE_DIR OPENWIRE_PORT HTTP_PORT (password in VAKT_ACTIVEMQ_PASSWORD)");
      System.exit(2);
    }
    String base = args[0];
    int openwirePort = Integer.parseInt(args[1]);
    int httpPort = Integer.parseInt(args[2]);
    String password = System.getenv("VAKT_ACTIVEMQ_PASSWORD");
    if (password == null || password.isEmpty()) {
      System.err.println("VAKT_ACTIVEMQ_PASSWORD is not set");
      System.exit(2);
    }
    // Without its policy file Jolokia quietly allows everything (no Origin check): refuse instead.
    File policy = new File(base, "jolokia-access.xml");
    if (!policy.isFile()) {
      System.err.println(policy + " is missing (Jolokia would run without its access policy)");
      System.exit(2);
    }

    BrokerService broker = new BrokerService();
    broker.setBrokerName("localhost");
    broker.setDataDirectory(base + "/data");
    broker.setPersistent(false);
    broker.setUseJmx(true);
    broker.getManagementContext().setCreateConnector(false);
    // Small limits: the defaults (100 GB store, 50 GB temp) only bring warnings about free disk space.
    broker.getSystemUsage().getMemoryUsage().setLimit(64L << 20);
    broker.getSystemUsage().getTempUsage().setLimit(256L << 20);
    broker.getSystemUsage().getStoreUsage().setLimit(256L << 20);
    broker.addConnector("tcp://127.0.0.1:" + openwirePort);
    broker.start();
    broker.waitUntilStarted();
    long brokerMs = ms();

    Server jetty = new Server();
    ServerConnector connector = new ServerConnector(jetty);
    connector.setHost("127.0.0.1");
    connector.setPort(httpPort);
    jetty.addConnector(connector);
    ServletContextHandler context = new ServletContextHandler(ServletContextHandler.SESSIONS | ServletContextHandler.SECURITY);
    context.setContextPath("/api");
    ServletHolder agent = new ServletHolder("jolokia-agent", new AgentServlet());
    agent.setInitParameter("allowErrorDetails", "false");
    agent.setInitParameter("policyLocation", policy.toURI().toString());
    agent.setInitOrder(1);
    context.addServlet(agent, "/jolokia/*");
    UserStore users = new UserStore();
    users.addUser("admin", new Password(password), new String[] {"admin"});
    HashLoginService login = new HashLoginService("ActiveMQRealm");
    login.setUserStore(users);
    Constraint constraint = new Constraint();
    constraint.setName(Constraint.__BASIC_AUTH);
    constraint.setRoles(new String[] {"user", "admin"});
    constraint.setAuthenticate(true);
    ConstraintMapping mapping = new ConstraintMapping();
    mapping.setConstraint(constraint);
    mapping.setPathSpec("/*");
    ConstraintSecurityHandler security = (ConstraintSecurityHandler) context.getSecurityHandler();
    security.setLoginService(login);
    security.setAuthenticator(new BasicAuthenticator());
    security.addConstraintMapping(mapping);
    jetty.setHandler(context);
    jetty.start();
    long jolokiaMs = ms();

    // The test's own client: producer and consumers over OpenWire, as an integration engine would be.
    ActiveMQConnectionFactory factory = new ActiveMQConnectionFactory("tcp://127.0.0.1:" + openwirePort);
    Connection connection = factory.createConnection();
    connection.start();
    Session producerSession = connection.createSession(false, Session.AUTO_ACKNOWLEDGE);
    Map<String, Session> consumers = new HashMap<>();
    answer("READY broker_ms=" + brokerMs + " jolokia_ms=" + jolokiaMs + " client_ms=" + ms());

    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      String[] w = line.trim().split("\\s+");
      try {
        if (w.length == 3 && w[0].equals("send")) {
          int n = Integer.parseInt(w[2]);
          MessageProducer producer = producerSession.createProducer(producerSession.createQueue(w[1]));
          producer.setDeliveryMode(DeliveryMode.PERSISTENT); // sent synchronously: the broker holds them when send returns
          for (int i = 0; i < n; i++) producer.send(producerSession.createTextMessage("MSH|^~\\&|LAB|RH|EPIC|SP|" + System.currentTimeMillis() + "||ORU^R01|" + i + "|P|2.5"));
          producer.close();
          answer("ok sent " + n + " " + w[1]);
        } else if (w.length == 2 && w[0].equals("consume")) {
          if (consumers.containsKey(w[1])) throw new IllegalStateException("already consuming " + w[1]);
          Session session = connection.createSession(false, Session.AUTO_ACKNOWLEDGE);
          MessageConsumer consumer = session.createConsumer(session.createQueue(w[1]));
          consumer.setMessageListener(message -> {}); // AUTO_ACKNOWLEDGE: acked as each one is delivered
          consumers.put(w[1], session);
          answer("ok consuming " + w[1]);
        } else if (w.length == 2 && w[0].equals("stop-consume")) {
          Session session = consumers.remove(w[1]);
          if (session == null) throw new IllegalStateException("not consuming " + w[1]);
          session.close();
          answer("ok stopped " + w[1]);
        } else if (w.length == 1 && w[0].equals("quit")) {
          break;
        } else {
          answer("error unknown command: " + line);
        }
      } catch (Exception e) {
        answer("error " + e);
      }
    }
    connection.close();
    jetty.stop();
    broker.stop();
    broker.waitUntilStopped();
    answer("ok quit");
    System.exit(0);
  }
}
